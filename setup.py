from setuptools import find_packages, setup

setup(
    name="stmd_keras",
    version="0.1.0",
    description=(
        "Spatial-temporal mutual distillation (STMD) for lightweight "
        "multi-channel sleep stage classification, in Keras 3 / TensorFlow."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["stmd_keras", "stmd_keras.*"]),
    install_requires=[
        "numpy>=1.26",
        "scipy>=1.11",
        "h5py>=3.10",
        "pyedflib>=0.1.38",
        "edfio>=0.4.18",
        "scikit-learn>=1.4",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "ai-edge-litert>=2.0",
    ],
    # TensorFlow is not in install_requires: `tensorflow` and `tensorflow-cpu`
    # are different distributions, and naming one would pull it in on top of
    # the other. requirements.txt pins the CPU wheel; pick with an extra.
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "test": ["pytest>=8", "nbformat>=5.9", "nbclient>=0.9", "ipykernel>=6.25"],
        "notebooks": ["jupyterlab", "ipykernel>=6.25"],
    },
    entry_points={"console_scripts": ["stmd=stmd_keras.cli:main"]},
)
