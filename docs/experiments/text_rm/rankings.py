import json, sys, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
from prefrl import PreferenceStore, RewardTrainer, SyntheticOracle, TrainerConfig, pearson, ranking_to_pairs
from prefrl.text_reward import make_text_reward_model
torch.set_num_threads(2)
rows = json.load(open("runs/text-rm/completions.json"))
groups = {}
for r in rows: groups.setdefault(r["group"], []).append(r)
pairs = [g for g in groups.values() if len(g) == 2]
test = pairs[-300:]; train = [x for g in pairs[:-300] for x in g]
W = 2 + 4 * 81 * 20
rm0 = make_text_reward_model("frozen", W)
allseg = rm0.segments([x["prompt"] for x in train], [x["completion"] for x in train], [x["score"] for x in train])
tp = [x for g in test for x in g]
tseg = rm0.segments([x["prompt"] for x in tp], [x["completion"] for x in tp], [x["score"] for x in tp])
def evaluate(rm):
    r = rm.rewards(tseg.obs[:, 0]).mean(0); true = tseg.true_reward[:, 0]
    dp, dt = r[0::2]-r[1::2], true[0::2]-true[1::2]; dec = dt != 0
    return ((dp[dec] > 0) == (dt[dec] > 0)).float().mean().item(), pearson(r, true)
for K, nq in ((2, 250), (2, 750), (2, 1000), (4, 250), (4, 500), (4, 1000), (8, 250)):
    n = K * nq
    if n > len(allseg): continue
    torch.manual_seed(0)
    rm = make_text_reward_model("frozen", W); rm.encoder = rm0.encoder; rm._cache = rm0._cache
    seg = allseg[:n]
    rm.set_input_stats(seg.obs[:, 0])
    st = PreferenceStore(None, seed=0)
    if K == 2:
        mu, ok = SyntheticOracle(noise=0.1, seed=0).label(seg[0::2], seg[1::2]); st.add(seg[0::2][ok], seg[1::2][ok], mu[ok])
    else:
        ranks = SyntheticOracle(noise=0.1, seed=0).rank(seg.true_reward.reshape(nq, K, 1))
        a, b, mu = ranking_to_pairs(ranks); st.add(seg[a], seg[b], mu)
    m = RewardTrainer(rm, TrainerConfig(seed=0, batch_size=32)).fit(st, epochs=1, min_steps=max(300, len(st) // 32 * 20))
    acc, c = evaluate(rm)
    print(f"K={K} queries={nq} completions={n} pairs={len(st)} test_acc={acc:.3f} corr={c:.3f}", flush=True)
