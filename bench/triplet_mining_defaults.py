"""Which mining and reduction for the exponential triplet loss?  The measurement behind the defaults of
``ferlib.train.criteria.ExponentialTripletConfig``.

    PYTHONPATH=. python bench/triplet_mining_defaults.py 100 blobs   # 7 noisy two-blob classes in 32-D
    PYTHONPATH=. python bench/triplet_mining_defaults.py 120 faces   # the synthetic faces

A small MLP embedding (16-D), batch 128, SGD lr 0.01 (DNNRL §4), k-NN accuracy on held-out points;
prints one line per (loss, mining, reduction, normalisation), mean of two seeds.
"""
import sys, time, torch, numpy as np
from torch import nn
from torch.nn import functional as F
from ferlib.data.synthetic import make_synthetic_faces
from ferlib.losses.triplet import TripletCriterion, mine_triplets, relative_distance
from ferlib.evaluate.knn import knn_sweep
torch.set_num_threads(1)
DATA = sys.argv[2] if len(sys.argv) > 2 else "faces"
if DATA == "faces":
    ds = make_synthetic_faces(300, seed=0)
    x = torch.from_numpy(ds.pixels).float()[:, None] / 255
    x = F.avg_pool2d(x, 2).flatten(1); x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = torch.from_numpy(ds.labels)
    tr = torch.from_numpy(ds.usage == "Training"); va = torch.from_numpy(ds.usage == "PublicTest")
    xt, yt, xv, yv = x[tr], y[tr], x[va], y[va]
else:  # 7 classes, each two Gaussian blobs in 32-D (a nonlinear problem), heavy noise
    gd = torch.Generator().manual_seed(0)
    mu = torch.randn(14, 32, generator=gd) * 1.0
    def sample(n):
        sub = torch.randint(0, 14, (n,), generator=gd)
        return mu[sub] + torch.randn(n, 32, generator=gd) * 2.0, sub % 7
    xt, yt = sample(2000); xv, yv = sample(700)
STEPS, B = int(sys.argv[1]) if len(sys.argv) > 1 else 120, 128
class Net(nn.Module):
    def __init__(s, normalize):
        super().__init__(); s.n = normalize
        s.f = nn.Sequential(nn.Linear(xt.shape[1], 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 16))
    def forward(s, z):
        e = s.f(z); return F.normalize(e, dim=1) if s.n else e
def knn(net):
    with torch.no_grad():
        sw = knn_sweep(net(xt), yt, net(xv), yv, ks=(1, 5, 11, 21))
    return max(sw.values())
def run(crit, normalize, momentum=0.9, seed=0):
    torch.manual_seed(seed); net = Net(normalize)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=momentum)
    g = torch.Generator().manual_seed(seed); act = []; t = time.time()
    for step in range(STEPS):
        idx = torch.randint(0, len(xt), (B,), generator=g)
        loss = crit(None, net(xt[idx]), yt[idx]); opt.zero_grad(); loss.backward(); opt.step()
        act.append(float(crit.last_terms["active_fraction"]))
    with torch.no_grad():
        e = net(xv); a, p, n = mine_triplets(e, yv, "all"); r = relative_distance(e[a], e[p], e[n])
    ok = bool(torch.isfinite(loss))
    return dict(knn=knn(net) if ok else float("nan"), act0=np.mean(act[:10]), act_end=np.mean(act[-10:]),
                ordered=float((r > 0).float().mean()), norm=float(e.norm(dim=1).mean()), s=time.time() - t)
torch.manual_seed(0)
print(DATA, f"steps {STEPS}, batch {B}; kNN at init (best of k 1,5,11,21): raw input %.3f" % max(knn_sweep(xt, yt, xv, yv, ks=(1,5,11,21)).values()), "raw %.3f" % knn(Net(False)), "l2 %.3f" % knn(Net(True)))
CONFIGS = [(True, "exponential", m, r) for m, r in (("all", "mean"), ("semi-hard", "mean"), ("semi-hard", "sum"), ("batch-hard", "mean"))]
CONFIGS += [(True, "triplet", "semi-hard", "mean"), (False, "exponential", "all", "sum"), (False, "exponential", "semi-hard", "mean")]
for normalize, loss, mining, red in CONFIGS:
    res = [run(TripletCriterion(loss, mining=mining, reduction=red), normalize, seed=s) for s in (0, 1)]
    m = {k: np.mean([r[k] for r in res]) for k in res[0]}
    print(f"{'l2 ' if normalize else 'raw'} {loss[:3]} {mining:10s} {red:4s} " + " ".join(f"{k}={v:.3f}" for k, v in m.items()), flush=True)
