"""PyTorch peer for the training-parity test: N steps of the study's training from given weights.

Reads the initial state_dict (safetensors, as hrtem writes it) and a batch file (safetensors:
`input.K` float32 [n, 1, h, w] and `labels.K` uint8 [n, h, w] for K = 0..N-1, used in that order,
no augmentation), runs for each batch: forward in training mode (BatchNorm batch statistics,
running statistics updated with momentum 0.1), mean pixel-wise softmax cross-entropy, backward,
Adam (PyTorch defaults: betas 0.9/0.999, eps 1e-8, no weight decay) with learning rate LR.
Writes the final state_dict to OUT (safetensors) and prints one JSON object with the loss of every
step and the torch version. Deterministic: one thread, deterministic algorithms, float32.
LOSS (default cross-entropy) picks hrtem's other objectives, written here with PyTorch's own
functions so autograd checks hrtem's hand-written gradients: weighted-cross-entropy (class
weights W0,W1 given after it), dice (1 - batch soft Dice of class 1, smoothing 1),
cross-entropy+dice, focal (gamma 2).
Usage: torch_train_steps.py INITIAL BATCHES LR OUT [LOSS [W0,W1]]
The safetensors format is read and written here by hand (an 8-byte header length, a JSON header,
raw little-endian bytes), so the peer needs only torch and numpy.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet_bench import UNet  # noqa: E402  (the study's network, one definition for every peer)

DTYPES = {"F32": np.float32, "U8": np.uint8, "I64": np.int64, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as handle:
        data = handle.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


def write_safetensors(tensors, path):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        array = tensors[name].detach().cpu().contiguous().numpy()
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[array.dtype]
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path + ".tmp", "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    os.replace(path + ".tmp", path)


def architecture(state):
    widths = []
    while f"downs.{len(widths)}.conv1.weight" in state:
        widths.append(state[f"downs.{len(widths)}.conv1.weight"].shape[0])
    return widths, state["bottleneck.conv1.weight"].shape[0]


def soft_dice_loss(logits, labels):
    p = F.softmax(logits, dim=1)[:, 1]
    g = (labels == 1).to(p.dtype)
    return 1 - (2 * (p * g).sum() + 1) / (p.sum() + g.sum() + 1)


def objective(name, weights):
    if name == "cross-entropy":
        return F.cross_entropy
    if name == "weighted-cross-entropy":
        return lambda logits, labels: F.cross_entropy(logits, labels, weight=weights)
    if name == "dice":
        return soft_dice_loss
    if name == "cross-entropy+dice":
        return lambda logits, labels: F.cross_entropy(logits, labels) + soft_dice_loss(logits, labels)
    if name == "focal":
        def focal(logits, labels):
            log_p = F.log_softmax(logits, dim=1).gather(1, labels[:, None])[:, 0]
            return (-(1 - log_p.exp()) ** 2 * log_p).mean()
        return focal
    raise SystemExit(f"unknown loss {name}")


def main():
    initial, batches_path, learning_rate, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    loss_name = sys.argv[5] if len(sys.argv) > 5 else "cross-entropy"
    weights = torch.tensor([float(w) for w in sys.argv[6].split(",")]) if len(sys.argv) > 6 else None
    loss_function = objective(loss_name, weights)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    state = read_safetensors(initial)
    widths, bottleneck = architecture(state)
    model = UNet(widths=tuple(widths), bottleneck=bottleneck)
    model.load_state_dict(state)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    batches = read_safetensors(batches_path)
    losses = []
    step = 0
    while f"input.{step}" in batches:
        inputs, labels = batches[f"input.{step}"], batches[f"labels.{step}"].long()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(inputs), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
    write_safetensors(model.state_dict(), out)
    print(json.dumps({"torch": torch.__version__, "losses": losses}))


if __name__ == "__main__":
    main()
