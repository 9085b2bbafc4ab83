"""Offline: text RM quality vs labels and model kind, on zero-shot completions."""
import json, sys, time, argparse, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
from prefrl import PreferenceStore, RewardTrainer, SyntheticOracle, TrainerConfig, pearson
from prefrl.text_reward import make_text_reward_model
ap = argparse.ArgumentParser()
ap.add_argument("--data", default="runs/text-rm/completions.json")
ap.add_argument("--kind", default="finetune"); ap.add_argument("--labels", type=int, nargs="+", default=[300])
ap.add_argument("--epochs", type=int, default=10); ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--train-layers", type=int, default=6); ap.add_argument("--trunk-lr", type=float, default=5e-5)
ap.add_argument("--lr", type=float, default=1e-3); ap.add_argument("--bs", type=int, default=32)
ap.add_argument("--members", type=int, default=3); ap.add_argument("--no-boot", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
rows = json.load(open(a.data))
groups = {}
for r in rows: groups.setdefault(r["group"], []).append(r)
pairs = [g for g in groups.values() if len(g) == 2]
test = pairs[-300:]; train_pool = pairs[:-300]
W = 2 + 4 * 81 * 20
for n in a.labels:
    torch.manual_seed(0)
    kw = dict(train_layers=a.train_layers, trunk_lr=a.trunk_lr) if a.kind == "finetune" else {}
    rm = make_text_reward_model(a.kind, W, n_members=a.members, **kw)
    tr = train_pool[:n]
    s1 = rm.segments([g[0]["prompt"] for g in tr], [g[0]["completion"] for g in tr], [g[0]["score"] for g in tr])
    s2 = rm.segments([g[1]["prompt"] for g in tr], [g[1]["completion"] for g in tr], [g[1]["score"] for g in tr])
    rm.set_input_stats(torch.cat([s1.obs[:, 0], s2.obs[:, 0]]))
    mu, ok = SyntheticOracle(noise=0.1, seed=0).label(s1, s2)
    st = PreferenceStore(None, seed=0); st.add(s1[ok], s2[ok], mu[ok])
    trainer = RewardTrainer(rm, TrainerConfig(seed=0, batch_size=a.bs, lr=a.lr, bootstrap=not a.no_boot))
    t = time.time(); m = trainer.fit(st, epochs=a.epochs); ft = time.time() - t
    tp = [x for g in test for x in g]
    t = time.time()
    r = rm.score([x["prompt"] for x in tp], [x["completion"] for x in tp]).mean(0)
    st_ = time.time() - t
    true = torch.tensor([x["score"] for x in tp])
    d_pred = r[0::2] - r[1::2]; d_true = true[0::2] - true[1::2]
    dec = d_true != 0
    acc = ((d_pred[dec] > 0) == (d_true[dec] > 0)).float().mean().item()
    print(f"{a.kind} boot={not a.no_boot} tl={a.train_layers} tlr={a.trunk_lr} ep={a.epochs} labels={n} ties={1-dec.float().mean():.2f} "
          f"val_acc(noisy)={m['rm/val_accuracy']:.3f} test_acc={acc:.3f} corr={pearson(r, true):.3f} "
          f"fit={ft:.1f}s score600={st_:.1f}s steps={m['rm/steps']:.0f}", flush=True)
