"""sigmoidF1 parity: a transcription of the reference `sigmoidF1` (gabriben/metrics-as-losses,
VLAP/sigmoidF1.py: sig = 1 / (1 + exp(S (y_hat + E))), tp / fp / fn summed over the batch,
1 - 2 tp / (2 tp + fn + fp + 1e-16), mean over labels), and the hard counts against
scikit-learn's f1 / precision / recall (zero_division=0) at the 0.5 threshold and argmax."""
import torch
from sklearn.metrics import f1_score, precision_score, recall_score, average_precision_score

from common import loss_and_grad, t2j, write


def sigmoid_f1(y_hat, y, S, E):
    sig = 1 / (1 + torch.exp(S * (y_hat + E)))
    tp = torch.sum(sig * y, dim=0)
    fp = torch.sum(sig * (1 - y), dim=0)
    fn = torch.sum((1 - sig) * y, dim=0)
    f1 = 2 * tp / (2 * tp + fn + fp + 1e-16)
    return torch.mean(1 - f1)


torch.manual_seed(0)
cases = []
z = torch.randn(40, 6, dtype=torch.float64) * 2
t = (torch.rand(40, 6) > 0.7).double()
t[:, 5] = 0  # a label without positive
for S, E in [(-1.0, 0.0), (-10.0, 1.0), (-3.0, -0.5)]:
    v, g = loss_and_grad(lambda x: sigmoid_f1(x, t, S, E), z)
    cases.append({"name": f"sigmoidF1 S={S} E={E}", "z": t2j(z), "t": t2j(t), "s": S, "e": E,
                  "loss": v, "grad": t2j(g)})
pred = (z > 0).int().numpy()
tn = t.int().numpy()
sk = {}
for avg in ["macro", "micro"]:
    sk[f"multilabel f1 {avg}"] = f1_score(tn, pred, average=avg, zero_division=0)
    sk[f"multilabel precision {avg}"] = precision_score(tn, pred, average=avg, zero_division=0)
    sk[f"multilabel recall {avg}"] = recall_score(tn, pred, average=avg, zero_division=0)
sk["binary f1"] = f1_score(tn[:, 0], pred[:, 0], zero_division=0)
zm = torch.randn(50, 4, dtype=torch.float64)
ym = torch.randint(0, 3, (50,))  # class 3 never a label
pm = zm.argmax(1).numpy()
for avg in ["macro", "micro"]:
    sk[f"multiclass f1 {avg}"] = f1_score(ym.numpy(), pm, average=avg, labels=[0, 1, 2, 3], zero_division=0)
# Retrieval AP of query 0 (itself left out) against sklearn's average_precision_score.
emb = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=1)
lab = torch.randint(0, 3, (20,))
sims = (emb @ emb.t())[0, 1:]
rel = (lab[1:] == lab[0]).int()
sk["retrieval ap query 0"] = average_precision_score(rel.numpy(), sims.numpy())
cases.append({"name": "sklearn", "z": t2j(z), "t": t2j(t), "zm": t2j(zm), "ym": ym.tolist(),
              "emb": t2j(emb), "lab": lab.tolist(), "values": sk})
write(cases)
