import json, sys, time, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3]))
from prefrl.text_reward import _load_encoder, DEFAULT_ENCODER
from prefrl import SyntheticOracle, Segments, pearson
torch.set_num_threads(2); torch.manual_seed(0)
rows = json.load(open("runs/text-rm/completions.json"))
groups = {}
for r in rows: groups.setdefault(r["group"], []).append(r)
pairs = [g for g in groups.values() if len(g) == 2]
tok, enc = _load_encoder(DEFAULT_ENCODER); enc.eval()
texts = [x for g in pairs for x in g]
t = time.time()
H, M, HS = [], [], []
with torch.no_grad():
    for s in range(0, len(texts), 64):
        b = tok([x["prompt"] for x in texts[s:s+64]], [x["completion"] for x in texts[s:s+64]], padding="max_length", truncation=True, max_length=80, return_tensors="pt")
        out = enc(**b, output_hidden_states=True)
        H.append(out.last_hidden_state); HS.append(out.hidden_states[0]); M.append((b["attention_mask"] * b["token_type_ids"]).float())
H = torch.cat(H); H0 = torch.cat(HS); M = torch.cat(M)
print("enc", time.time() - t, H.shape)
scores = torch.tensor([x["score"] for x in texts])
n_pairs = len(pairs); test = torch.arange(n_pairs - 300, n_pairs)
def run(feat, pool, n_lab, steps=600, hidden=64, wd=1e-3):
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(feat.shape[-1], hidden), nn.LeakyReLU(), nn.Linear(hidden, 1))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=wd)
    tr = torch.arange(n_lab)
    s1 = Segments(torch.zeros(n_lab,1,1), torch.zeros(n_lab,1), scores[2*tr][:,None]); s2 = Segments(torch.zeros(n_lab,1,1), torch.zeros(n_lab,1), scores[2*tr+1][:,None])
    mu, _ = SyntheticOracle(noise=0.1, seed=0).label(s1, s2)
    def R(idx):
        r = head(feat[idx]).squeeze(-1) * M[idx]
        return r.sum(1) if pool == "sum" else r.sum(1) / M[idx].sum(1).clamp_min(1)
    for it in range(steps):
        b = tr[torch.randint(n_lab, (32,))]
        d = R(2*b) - R(2*b+1)
        m = mu[b]
        p = 0.9 * torch.sigmoid(d) + 0.05
        loss = -(m * p.log() + (1-m) * (1-p).log()).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        r = torch.stack([R(2*test), R(2*test+1)], 1).reshape(-1)
        true = torch.stack([scores[2*test], scores[2*test+1]], 1).reshape(-1)
        dp, dt = r[0::2]-r[1::2], true[0::2]-true[1::2]; dec = dt != 0
        return ((dp[dec] > 0) == (dt[dec] > 0)).float().mean().item(), pearson(r, true)
for name, feat in (("last", H), ("static", H0)):
    for pool in ("mean", "sum"):
        for n in (250, 750):
            t = time.time(); acc, c = run(feat, pool, n)
            print(f"{name} {pool} labels={n} acc={acc:.3f} corr={c:.3f} ({time.time()-t:.1f}s)", flush=True)
# ceiling: regress true scores directly
def reg(feat, pool, n):
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(feat.shape[-1], 64), nn.LeakyReLU(), nn.Linear(64, 1))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-3)
    idx = torch.arange(2*n)
    def R(i):
        r = head(feat[i]).squeeze(-1) * M[i]
        return r.sum(1) if pool == "sum" else r.sum(1) / M[i].sum(1).clamp_min(1)
    for it in range(800):
        b = idx[torch.randint(len(idx), (64,))]
        loss = F.mse_loss(R(b), scores[b]); opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        te = torch.cat([2*test, 2*test+1]); return pearson(R(te), scores[te])
print("score dist: frac |s|<0.05", (scores.abs() < 0.05).float().mean().item(), "std", scores.std().item())
for name, feat in (("last", H), ("static", H0)):
    for n in (750, 1000):
        print("regression", name, n, reg(feat, "sum", n))
