"""Prints the fingerprint `clasp` gives a CLIP teacher folder (teacher::labeller::teacher_fingerprint):
sha256 over, for each of its model-defining files that exists, the file's name then its bytes.
Used to pin the shipped teacher (core/src/quickstart/shipped_teacher.rs)."""
import hashlib
import os
import sys

h = hashlib.sha256()
for name in ["config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"]:
    path = os.path.join(sys.argv[1], name)
    if os.path.isfile(path):
        h.update(name.encode())
        h.update(open(path, "rb").read())
print(h.hexdigest())
