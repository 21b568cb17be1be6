"""Lovasz parity: a transcription of Berman's `lovasz_losses.py` (bermanmaxim/LovaszSoftmax,
pytorch/lovasz_losses.py: lovasz_grad, lovasz_hinge(_flat), lovasz_softmax(_flat), mean) and
segmentation-models-pytorch 0.6.0's copy (`losses/lovasz.py`), on fixed inputs with absent
classes and void pixels; values and gradients w.r.t. the logits."""
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import lovasz as smp_lovasz

from common import loss_and_grad, t2j, write


def lovasz_grad(gt_sorted):
    # The reference casts with .float(); float64 here, so that the comparison is to 1e-10.
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.double().cumsum(0)
    union = gts + (1 - gt_sorted).double().cumsum(0)
    jaccard = 1. - intersection / union
    if p > 1:
        jaccard[1:p] = jaccard[1:p] - jaccard[0:-1]
    return jaccard


def mean(values, empty=0):
    values = iter(values)
    try:
        n = 1
        acc = next(values)
    except StopIteration:
        return empty
    for n, v in enumerate(values, 2):
        acc += v
    return acc if n == 1 else acc / n


def flatten_binary_scores(scores, labels, ignore=None):
    scores = scores.view(-1)
    labels = labels.view(-1)
    if ignore is None:
        return scores, labels
    valid = labels != ignore
    return scores[valid], labels[valid]


def lovasz_hinge_flat(logits, labels):
    if len(labels) == 0:
        return logits.sum() * 0.
    signs = 2. * labels.double() - 1.
    errors = 1. - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    gt_sorted = labels[perm]
    grad = lovasz_grad(gt_sorted).double()
    return torch.dot(F.relu(errors_sorted), grad)


def lovasz_hinge(logits, labels, per_image=True, ignore=None):
    if per_image:
        return mean(lovasz_hinge_flat(*flatten_binary_scores(l.unsqueeze(0), y.unsqueeze(0), ignore))
                    for l, y in zip(logits, labels))
    return lovasz_hinge_flat(*flatten_binary_scores(logits, labels, ignore))


def flatten_probas(probas, labels, ignore=None):
    B, C, H, W = probas.size()
    probas = probas.permute(0, 2, 3, 1).contiguous().view(-1, C)
    labels = labels.view(-1)
    if ignore is None:
        return probas, labels
    valid = labels != ignore
    return probas[valid.nonzero().squeeze()], labels[valid]


def lovasz_softmax_flat(probas, labels, classes='present'):
    if probas.numel() == 0:
        return probas * 0.
    C = probas.size(1)
    losses = []
    class_to_sum = list(range(C)) if classes in ['all', 'present'] else classes
    for c in class_to_sum:
        fg = (labels == c).double()
        if classes == 'present' and fg.sum() == 0:
            continue
        class_pred = probas[:, c]
        errors = (fg - class_pred).abs()
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        fg_sorted = fg[perm]
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg_sorted).double()))
    return mean(losses)


def lovasz_softmax(probas, labels, classes='present', per_image=False, ignore=None):
    if per_image:
        return mean(lovasz_softmax_flat(*flatten_probas(p.unsqueeze(0), y.unsqueeze(0), ignore), classes=classes)
                    for p, y in zip(probas, labels))
    return lovasz_softmax_flat(*flatten_probas(probas, labels, ignore), classes)


torch.manual_seed(0)
cases = []
B, C, H, W = 3, 5, 7, 6
z = torch.randn(B, C, H, W, dtype=torch.float64)
y = torch.randint(0, C - 1, (B, H, W))  # class C-1 absent
y[1][y[1] == 2] = 0  # class 2 absent from image 1
y_void = y.clone()
y_void[0, :2] = 255
for classes in ["present", "all", [0, 4], [2]]:
    for per_image in [False, True]:
        for ignore, labels in [(None, y), (255, y_void)]:
            f = lambda x: lovasz_softmax(x.softmax(1), labels, classes, per_image, ignore)
            v, g = loss_and_grad(f, z)
            case = {"name": f"softmax classes={classes} per_image={per_image} ignore={ignore}",
                    "kind": "softmax", "z": t2j(z), "labels": t2j(labels), "classes": classes,
                    "per_image": per_image, "ignore": ignore, "loss": v, "grad": t2j(g)}
            if classes in ["present", "all"]:
                # smp's copy takes the same arguments (its classes= path is the same code).
                # smp (like the reference) computes its Jaccard gradient in float32.
                vs = float(smp_lovasz._lovasz_softmax(z.float().softmax(1), labels, classes, per_image, ignore))
                assert abs(vs - v) < 1e-5, (vs, v)
            cases.append(case)
zb = torch.randn(B, H, W, dtype=torch.float64)
yb = (torch.rand(B, H, W) > 0.6).long()
yb[2] = 0  # an image without foreground
yb_void = yb.clone()
yb_void[1, 3:] = 255
for per_image in [True, False]:
    for ignore, labels in [(None, yb), (255, yb_void)]:
        v, g = loss_and_grad(lambda x: lovasz_hinge(x, labels, per_image, ignore), zb)
        vs = float(smp_lovasz._lovasz_hinge(zb.float(), labels, per_image, ignore))
        assert abs(vs - v) < 1e-5, (vs, v)
        cases.append({"name": f"hinge per_image={per_image} ignore={ignore}", "kind": "hinge",
                      "z": t2j(zb), "labels": t2j(labels), "per_image": per_image, "ignore": ignore,
                      "loss": v, "grad": t2j(g)})
write(cases)
