import json, sys, time, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
from envs.text_models import load_causal_lm
from prefrl import SyntheticOracle, Segments, pearson
torch.set_num_threads(2); torch.manual_seed(0)
rows = json.load(open("runs/text-rm/completions.json"))
groups = {}
for r in rows: groups.setdefault(r["group"], []).append(r)
pairs = [g for g in groups.values() if len(g) == 2]
NP = int(sys.argv[1]); pairs = pairs[:NP - 300] + pairs[-300:]
model, tok = load_causal_lm("SmolLM2-135M-Instruct"); model.eval()
texts = [x for g in pairs for x in g]
tok.padding_side = "right"
t = time.time(); Hs = {}; M = []
LAYERS = (10, 20, 30)
with torch.no_grad():
    for s in range(0, len(texts), 32):
        chunk = texts[s:s+32]
        p = [tok(x["prompt"])["input_ids"] for x in chunk]; c = [tok(x["completion"])["input_ids"] for x in chunk]
        T = max(len(a)+len(b) for a, b in zip(p, c))
        ids = torch.full((len(chunk), T), tok.eos_token_id); am = torch.zeros(len(chunk), T); cm = torch.zeros(len(chunk), T)
        for i, (a, b) in enumerate(zip(p, c)):
            ids[i, :len(a)+len(b)] = torch.tensor(a+b); am[i, :len(a)+len(b)] = 1; cm[i, len(a):len(a)+len(b)] = 1
        out = model.model(input_ids=ids, attention_mask=am, output_hidden_states=True)
        for L in LAYERS:
            h = out.hidden_states[L]
            h = F.pad(h, (0, 0, 0, 64 - T)); Hs.setdefault(L, []).append(h)
        M.append(F.pad(cm, (0, 64 - T)))
M = torch.cat(M); Hs = {L: torch.cat(v) for L, v in Hs.items()}
print("enc", time.time() - t, M.shape, flush=True)
scores = torch.tensor([x["score"] for x in texts]); n_pairs = len(pairs); test = torch.arange(n_pairs - 300, n_pairs)
def fit(feat, pool, n, mode):
    torch.manual_seed(0)
    feat = (feat - feat[M.bool()].mean(0)) / feat[M.bool()].std(0).clamp_min(1e-3)
    head = nn.Sequential(nn.Linear(feat.shape[-1], 64), nn.LeakyReLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-3)
    def R(i):
        r = head(feat[i]).squeeze(-1) * M[i]
        return r.sum(1) if pool == "sum" else r.sum(1) / M[i].sum(1).clamp_min(1)
    tr = torch.arange(n)
    s1 = Segments(torch.zeros(n,1,1), torch.zeros(n,1), scores[2*tr][:,None]); s2 = Segments(torch.zeros(n,1,1), torch.zeros(n,1), scores[2*tr+1][:,None])
    mu, _ = SyntheticOracle(noise=0.1, seed=0).label(s1, s2)
    for it in range(600):
        b = tr[torch.randint(n, (32,))]
        if mode == "reg":
            bb = torch.cat([2*b, 2*b+1]); loss = F.mse_loss(R(bb), scores[bb])
        else:
            d = R(2*b) - R(2*b+1); p = 0.9 * torch.sigmoid(d) + 0.05; m = mu[b]
            loss = -(m * p.log() + (1-m) * (1-p).log()).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        r = torch.stack([R(2*test), R(2*test+1)], 1).reshape(-1); true = torch.stack([scores[2*test], scores[2*test+1]], 1).reshape(-1)
        dp, dt = r[0::2]-r[1::2], true[0::2]-true[1::2]; dec = dt != 0
        return ((dp[dec] > 0) == (dt[dec] > 0)).float().mean().item(), pearson(r, true)
for L in LAYERS:
    for pool in ("mean", "sum"):
        for mode in ("bt",):
            acc, c = fit(Hs[L], pool, NP - 300, mode)
            print(f"smol layer {L} {pool} {mode} labels={NP-300} acc={acc:.3f} corr={c:.3f}", flush=True)
