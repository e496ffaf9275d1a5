#!/usr/bin/python3
"""vit_b_16 for bench_inference, under PyTorch 2.x (1.13's torch.fx cannot trace it), made as
pytorch-anchors/inference/make_models.py makes the others: random weights, torch.fx.symbolic_trace,
torch.package with extern("torchvision.**"), ONNX, input/output .npy. Two differences:
- torchvision zero-initialises the classifier head (heads.head), so every input would give
  all-zero logits and no comparison could fail: the head gets normal(0, 0.02) weights.
- ONNX opset 14 (2.6's TorchScript exporter writes scaled_dot_product_attention only from 14);
  that exporter imports the `onnx` package (absent from the Debian 13 root) only to add
  onnxscript functions of custom ops, which this model has none of: that step is skipped.
From the folder holding the models, in PyTorch 2.6's root (times PyTorch where it can load
the model; bench_inference shows those lines as recorded):
    ../shared/tools/debian13-torch.sh 'python3 make_vit.py . && for t in 1 2; do
        OMP_WAIT_POLICY=passive python3 torch_eager.py vit_b_16/package.pt vit_b_16/input.npy $t 20;
        done > vit_b_16/torch_eager.txt'
(with make_vit.py and torch_eager.py copied there: the root sees only that folder)."""
import os, sys
import numpy as np, torch, torch.fx, torchvision
from torch.package import PackageExporter
import torch.onnx.utils as onnx_utils

d = os.path.join(sys.argv[1], "vit_b_16"); os.makedirs(d, exist_ok=True)
torch.manual_seed(0)
m = torchvision.models.vit_b_16(weights=None)
with torch.no_grad():
    torch.nn.init.normal_(m.heads.head.weight, std=0.02); torch.nn.init.normal_(m.heads.head.bias, std=0.02)
m.eval()
gm = torch.fx.symbolic_trace(m)
with PackageExporter(os.path.join(d, "package.pt")) as e:
    e.extern("torchvision.**")
    e.save_pickle("model", "model.pkl", gm)
torch.manual_seed(0); x = torch.randn(1, 3, 224, 224)
with torch.no_grad(): y = gm(x)
np.save(os.path.join(d, "input.npy"), x.numpy()); np.save(os.path.join(d, "output.npy"), y.numpy())
print("logits: max |y|", y.abs().max().item())
onnx_utils.onnx_proto_utils._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
torch.onnx.export(gm, x, os.path.join(d, "model.onnx"), opset_version=14, input_names=["x"], output_names=["y"], dynamo=False)
print("exported", os.path.getsize(os.path.join(d, "model.onnx")))
