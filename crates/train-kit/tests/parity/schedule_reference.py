"""Reference for the WarmupMultiStep parity test (crates/train-kit/src/schedule.rs).

detectron2's `WarmupMultiStepLR` (linear warmup) is the product of a linear warmup factor and
`gamma ** bisect_right(milestones, t)`; in torch that is `LinearLR(start_factor=warmup_factor,
end_factor=1, total_iters=warmup_steps)` chained with `MultiStepLR(milestones, gamma)`, both
stepped once per iteration. Writes [{"schedule": <the Rust serde form>, "lrs": [lr at t =
0, 1, ...]}] to argv[1]/schedule.json.
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402

CASES = [
    # (base_lr, gamma, milestones, warmup_steps, warmup_factor, steps)
    (0.01, 0.1, [30, 40], 10, 0.001, 50),  # the 1x recipe's shape, scaled down
    (0.02, 0.5, [5, 12, 20], 8, 0.25, 30),  # a milestone inside the warmup
    (0.1, 0.1, [7], 0, 1.0, 25),  # no warmup
]


def lrs(base_lr, gamma, milestones, warmup_steps, warmup_factor, steps):
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=base_lr)
    scheds = [torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma)]
    if warmup_steps > 0:
        scheds.insert(
            0,
            torch.optim.lr_scheduler.LinearLR(
                opt, start_factor=warmup_factor, end_factor=1.0, total_iters=warmup_steps
            ),
        )
    chain = torch.optim.lr_scheduler.ChainedScheduler(scheds, optimizer=opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        chain.step()
    return out


def main():
    out = []
    for base_lr, gamma, milestones, warmup_steps, warmup_factor, steps in CASES:
        out.append(
            {
                "schedule": {
                    "kind": "warmup_multi_step",
                    "base_lr": base_lr,
                    "gamma": gamma,
                    "milestones": milestones,
                    "warmup_steps": warmup_steps,
                    "warmup_factor": warmup_factor,
                },
                "lrs": lrs(base_lr, gamma, milestones, warmup_steps, warmup_factor, steps),
            }
        )
    with open(os.path.join(sys.argv[1], "schedule.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
