#!/usr/bin/env python3
"""mkdata.py DIR [N]: a small MNIST-format test set (t10k IDX files, gzip) in DIR.
The first N digits of the real MNIST test set when $DTRAIN_TEST_MNIST (or
../shared/data/mnist) holds it, otherwise (or with DTRAIN_TEST_DATA=synthetic)
N random strokes: the memory
checks need shapes, not a good model."""
import gzip, os, random, struct, sys

out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400
root = os.path.dirname(os.path.abspath(__file__))
src = os.environ.get("DTRAIN_TEST_MNIST", os.path.join(root, "../../../shared/data/mnist"))
os.makedirs(out, exist_ok=True)
img_path = os.path.join(src, "t10k-images-idx3-ubyte.gz")
lab_path = os.path.join(src, "t10k-labels-idx1-ubyte.gz")
if os.environ.get("DTRAIN_TEST_DATA") != "synthetic" and os.path.isfile(img_path) and os.path.isfile(lab_path):
    with gzip.open(img_path) as f:
        f.read(16)
        pixels = f.read(n * 784)
    with gzip.open(lab_path) as f:
        f.read(8)
        labels = f.read(n)
else:
    rnd = random.Random(1)
    img = bytearray()
    labels = bytes(i % 10 for i in range(n))
    for i in range(n):
        a = [0] * 784
        x, y = rnd.randint(8, 19), rnd.randint(6, 21)
        for _ in range(60 + 8 * labels[i]):  # a random walk, longer for larger digits
            x = min(25, max(2, x + rnd.choice((-1, 0, 1))))
            y = min(25, max(2, y + rnd.choice((-1, 0, 1))))
            a[y * 28 + x] = 255
            a[y * 28 + x + 1] = max(a[y * 28 + x + 1], 160)
        img += bytes(a)
    pixels = bytes(img)
with gzip.open(os.path.join(out, "t10k-images-idx3-ubyte.gz"), "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28) + pixels)
with gzip.open(os.path.join(out, "t10k-labels-idx1-ubyte.gz"), "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + labels)
