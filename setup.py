"""Build cookbook_ops: C++ CPU kernels when torch and a compiler are present, CUDA kernels
when torch has CUDA and nvcc is found (or FORCE_CUDA=1), otherwise a pure-Python package
that runs everything through the reference backend.

Environment:
  COOKBOOK_OPS_CUDA=0|1   force CUDA kernels off, or require them (fail if impossible)
  FORCE_CUDA=1            build CUDA kernels even when no GPU is visible
                          (the default whenever nvcc is found)
  TORCH_CUDA_ARCH_LIST    GPU architectures; defaults to "8.0;9.0" when no GPU is visible
  MAX_JOBS                parallel compile jobs (ninja)
  COOKBOOK_OPS_EXTENSION=0  skip every compiled kernel (pure-Python install)

Install with `pip install --no-build-isolation .` so the build sees the torch you run with.
"""

import glob
import os
import shutil
import subprocess
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
CONFIG_PATH = os.path.join(ROOT, "cookbook_ops", "_build_config.py")


def say(msg):
    print(f"cookbook_ops setup: {msg}", file=sys.stderr, flush=True)


def write_build_config(**values):
    lines = ['"""Written by setup.py at build time: what the extension was built with."""', ""]
    for key, value in values.items():
        lines.append(f"{key} = {value!r}")
    with open(CONFIG_PATH, "w") as f:
        f.write("\n".join(lines) + "\n")


def locate_cuda_home():
    """Point CUDA_HOME at the real toolkit before torch.utils.cpp_extension guesses it.

    torch derives CUDA_HOME from the nvcc on PATH; when that nvcc is a wrapper script in
    /usr/local/bin the guess (/usr/local) has no headers or libcudart, and linking fails.
    nvcc's --dryrun output names its real install (TOP=...)."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    candidates = []
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
        try:
            out = subprocess.run(
                [nvcc, "--dryrun", "--version"], capture_output=True, text=True, timeout=60
            )
            for line in (out.stdout + out.stderr).splitlines():
                if "TOP=" in line:
                    top = line.split("TOP=", 1)[1].strip()
                    candidates.insert(0, os.path.normpath(top))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.append("/usr/local/cuda")
    for home in candidates:
        if os.path.exists(os.path.join(home, "include", "cuda_runtime.h")):
            os.environ["CUDA_HOME"] = home
            say(f"CUDA_HOME={home} (from the nvcc found on PATH)")
            return


def find_nvcc(cuda_home):
    if cuda_home:
        candidate = os.path.join(cuda_home, "bin", "nvcc")
        if os.path.exists(candidate):
            return candidate
    return shutil.which("nvcc")


# Commands that compile. Any other (sdist, egg_info, dist_info, ...) only describes or packs
# the sources: it neither probes torch and the compilers nor writes the build record (an sdist
# must not carry one).
BUILD_COMMANDS = {
    "build",
    "build_ext",
    "bdist",
    "bdist_wheel",
    "editable_wheel",
    "develop",
    "install",
}


def extension_modules():
    """(ext_modules, cmdclass); prints what it builds and why."""
    if not BUILD_COMMANDS.intersection(sys.argv[1:]):
        return [], {}
    if os.environ.get("COOKBOOK_OPS_EXTENSION", "1") == "0":
        reason = "COOKBOOK_OPS_EXTENSION=0"
        say(f"building no kernels ({reason}); the reference backend serves every op")
        write_build_config(TORCH_VERSION=None, CUDA_VERSION=None, SKIPPED_REASON=reason)
        return [], {}
    if os.environ.get("COOKBOOK_OPS_CUDA", "").strip() != "0":
        locate_cuda_home()
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except ImportError as exc:
        reason = f"torch is not importable at build time ({exc})"
        say(f"building no kernels: {reason}; the reference backend serves every op")
        write_build_config(TORCH_VERSION=None, CUDA_VERSION=None, SKIPPED_REASON=reason)
        return [], {}

    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        reason = f"no C++ compiler ({cxx!r} not found)"
        say(f"building no kernels: {reason}; the reference backend serves every op")
        write_build_config(TORCH_VERSION=None, CUDA_VERSION=None, SKIPPED_REASON=reason)
        return [], {}

    notes = []
    want = os.environ.get("COOKBOOK_OPS_CUDA", "").strip()
    nvcc = find_nvcc(CUDA_HOME)
    if want == "0":
        use_cuda, why = False, "COOKBOOK_OPS_CUDA=0"
    elif torch.version.cuda is None:
        use_cuda, why = False, f"torch {torch.__version__} is a CPU-only build"
    elif nvcc is None:
        use_cuda, why = False, "nvcc not found (set CUDA_HOME or put nvcc on PATH)"
    elif os.environ.get("FORCE_CUDA") == "1":
        use_cuda, why = True, f"FORCE_CUDA=1, nvcc at {nvcc}"
    else:
        use_cuda, why = True, f"torch has CUDA {torch.version.cuda} and nvcc is at {nvcc}"
    if want == "1" and not use_cuda:
        raise RuntimeError(f"COOKBOOK_OPS_CUDA=1 but CUDA kernels cannot be built: {why}")
    if use_cuda:
        say(f"CUDA kernels: yes ({why})")
    else:
        say(f"CUDA kernels skipped: {why}; building the C++ CPU kernels only")
    notes.append(f"CUDA kernels {'built' if use_cuda else 'not built'}: {why}")

    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    sources += sorted(glob.glob("csrc/autograd/*.cpp"))
    include_dirs = [os.path.join(ROOT, "csrc", "include")]
    openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []
    extra = {
        "cxx": ["-O3", "-DCOOKBOOK_OPS_EXTENSION"] + openmp,
    }
    arch_list = None
    if use_cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            if torch.cuda.is_available():
                arch_list = None  # torch picks the visible GPUs' architectures
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0"
                say("no GPU visible: TORCH_CUDA_ARCH_LIST defaults to 8.0;9.0")
        arch_list = os.environ.get("TORCH_CUDA_ARCH_LIST")
        extra["nvcc"] = ["-O3", "-lineinfo", "-DCOOKBOOK_OPS_EXTENSION"]
        # ATen's CUDA headers can pull cusparse.h, which a bare toolkit may lack; the CUDA
        # wheels that torch depends on ship it.
        import site

        for base in site.getsitepackages() + [site.getusersitepackages()]:
            for sub in ("nvidia/cu13/include", "nvidia/cusparse/include"):
                candidate = os.path.join(base, sub)
                if os.path.isdir(candidate):
                    include_dirs.append(candidate)
        ext_cls = CUDAExtension
    else:
        ext_cls = CppExtension
    say(f"C++ CPU kernels: yes (torch {torch.__version__}, compiler {cxx})")
    say("sources: " + ", ".join(sources))
    if os.environ.get("MAX_JOBS"):
        say(f"MAX_JOBS={os.environ['MAX_JOBS']}")

    write_build_config(
        TORCH_VERSION=torch.__version__,
        CUDA_VERSION=torch.version.cuda if use_cuda else None,
        CUDA_ARCH_LIST=arch_list,
        WITH_CUDA=use_cuda,
        NOTES=notes,
        SKIPPED_REASON=None,
    )
    ext = ext_cls(
        name="cookbook_ops._C",
        sources=sources,
        include_dirs=include_dirs,
        extra_compile_args=extra,
        extra_link_args=openmp,
    )
    base = BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)

    class BuildExt(base):
        """Compile into build/temp-<torch version> inside the checkout (not a fresh temporary
        folder per build) so that ninja recompiles only the sources that changed."""

        def finalize_options(self):
            super().finalize_options()
            tag = torch.__version__.replace("+", "-")
            self.build_temp = os.path.join(ROOT, "build", f"temp-{tag}")

    return [ext], {"build_ext": BuildExt}


ext_modules, cmdclass = extension_modules()

setup(
    packages=find_packages(include=["cookbook_ops", "cookbook_ops.*"]),
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
