"""Writes torchvision's ImageNet ResNet-50 (`ResNet50_Weights.IMAGENET1K_V1`, the weights of
torchvision's detection references) as safetensors, with torchvision's parameter names, for
`ResNet::load_safetensors` and the `pyramid.full` claim.

Usage: python torchvision_resnet50.py OUT.safetensors [--weights IMAGENET1K_V1|IMAGENET1K_V2]

`pyramid.full` reads DIR/resnet50_imagenet.safetensors under its `--data-root DIR`. The weights
are downloaded by torchvision into its cache on first use (a machine without network access
needs the cached `resnet50-0676ba61.pth` already in `$TORCH_HOME/hub/checkpoints`). The
classifier `fc.` stays in the file: the loader reports it unexpected and leaves it out; the
BatchNorm `num_batches_tracked` counters are ignored.
"""
import argparse
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torchvision  # noqa: E402
from safetensors.torch import save_file  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the safetensors file to write")
    p.add_argument("--weights", default="IMAGENET1K_V1", choices=["IMAGENET1K_V1", "IMAGENET1K_V2"])
    a = p.parse_args()
    weights = getattr(torchvision.models.ResNet50_Weights, a.weights)
    model = torchvision.models.resnet50(weights=weights).eval()
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise SystemExit(f"non-finite values in {bad}")
    save_file(state, a.out, metadata={"source": f"torchvision ResNet50_Weights.{a.weights}"})
    print(f"{a.out}: {len(state)} tensors from torchvision ResNet50_Weights.{a.weights}")


if __name__ == "__main__":
    main()
