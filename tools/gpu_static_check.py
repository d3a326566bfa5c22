"""Compile every GPU kernel for sm_90 without a GPU and check what the hardware would run.

For the Triton kernels (``static_compile_specs()`` of tools/triton_specs/<op>.py for each module
in cookbook_ops/triton/) and the CUDA C++ kernels (csrc/cuda/*.cu), read from the compiled
cubin: registers, shared memory, local memory and spills, and the widest global load and store
in the SASS. Fails (exit 1) when
- a kernel spills registers to local memory, or
- a kernel meant to be bandwidth-bound moves global memory in narrower pieces than required
  (e.g. LDG.E.U16 where LDG.E.128 was expected: 8x the instructions per byte), or
- something does not compile.
Triton kernels are also checked for what their arithmetic compiles to (PTX and TTIR), where a
spec asks for it:
- "separate_rounding": no contracted fma.rn.f32/f64 in the PTX (the reference rounds the
  products of a blend and their sum separately; an FMA rounds once and can differ by an ulp);
- "nan_propagating_max": every floating max in the PTX is max.NaN (plain max.f32 returns the
  other operand when one is NaN, so a NaN row would get a finite max and a wrong argmax, and a
  NaN norm clamped at 1e-12 would turn into huge finite outputs);
- "row_count_args": no comparison of a row count argument with an index computed in 32 bits
  from the program id (past 2**31 rows such an index wraps negative and passes `rows < n`);
- "size_args": no 32-bit sum of a size argument (or a product or sum of them) and a positive
  constant, the tl.cdiv(size, BLOCK) = (size + BLOCK - 1) // BLOCK pattern: for a size the
  launcher allows within BLOCK of 2**31 it wraps negative and misplaces every program.

    python tools/gpu_static_check.py [--only triton|cuda] [--match TEXT] [--json PATH]
                                     [--keep DIR] [--arch 90]

Required widths: Triton specs carry "min_load_bits"/"min_store_bits"; CUDA kernels get theirs
from CUDA_WIDTH_RULES below, matched against the demangled kernel name.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import importlib.util
import json
import logging
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import time

# Kernels must be compiled for real, not wrapped for the CPU interpreter; this has to be decided
# before triton (or anything importing it) is imported.
os.environ.pop("TRITON_INTERPRET", None)
# The compiled extension plays no part here and may be mid-rebuild.
os.environ.setdefault("COOKBOOK_OPS_DISABLE_EXTENSION", "1")
# Its "no CUDA runtime found" warning is expected on a machine without a GPU.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# CUDA kernels: (substring of the demangled name, min load bits, min store bits); the first
# matching rule wins, None means no requirement. A new op's kernels are covered by the generic
# forward/backward rules; put an exemption above them for a kernel that is legitimately narrow
# (a scalar tail kernel, say), with the reason.
CUDA_WIDTH_RULES: list[tuple[str, int | None, int | None]] = [
    # Reads z and grad_z as vectors but writes one partial dot product per block.
    ("bilinear_pool_backward_dot_kernel", 128, None),
    # mixup/CutMix: 16-byte vectors in and out over each sample's block; the narrow accesses
    # beside them are the scalar head/tail and the element-wise path for a source sample at a
    # different 16-byte phase than the output. The pair kernel writes both samples in place.
    ("mixup_forward_kernel", 128, 128),
    ("mixup_backward_kernel", 128, 128),
    ("mixup_pairs_kernel", 128, 128),
    ("cutmix_forward_kernel", 128, 128),
    ("cutmix_backward_kernel", 128, 128),
    # normalize_images: 16-byte uint8 loads into shared memory, 16-byte stores out of it.
    # The generic kernel (more than 16 channels with channels innermost, no image format)
    # is one element per thread.
    ("normalize_images_forward_kernel", 128, 128),
    ("normalize_images_forward_generic_kernel", None, None),
    # One int64 read and at most one int64 write per sample: nothing to vectorize.
    ("mixup_inverse_permutation_kernel", None, None),
    # resized_crop_normalize gathers one byte per filter tap (the taps of neighbouring output
    # pixels are neither contiguous nor aligned) and writes channels of a pixel apart.
    ("resized_crop_normalize_forward_kernel", None, None),
    ("backward", 128, 128),
    ("forward", 128, None),
]

SPILL_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
ENTRY_RE = re.compile(r"Compiling entry function '([^']+)'")
USED_RE = re.compile(r"Used (\d+) registers")
SMEM_RE = re.compile(r"(\d+) bytes smem")
RESOURCE_RE = re.compile(
    r"Function ([^:\s]+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)"
)
# Optional predicate, then the opcode with its modifiers.
SASS_INSN_RE = re.compile(r"/\*[0-9a-f]+\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)")
GLOBAL_LOADS = ("LDG", "LDGSTS")  # LDGSTS: cp.async global -> shared
GLOBAL_STORES = ("STG",)
BULK_COPIES = ("UTMALDG", "UBLKCP", "UTMASTG")  # TMA / bulk copies move whole tiles
BULK_BITS = 1024
SIZE_MODIFIERS = {"U8": 8, "S8": 8, "U16": 16, "S16": 16, "64": 64, "128": 128, "256": 256}


# --- tools ----------------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    """Triton's bundled CUDA tools first (they know the newest architectures), then the
    toolkit's, then PATH."""
    candidates = []
    spec = importlib.util.find_spec("triton")
    if spec and spec.submodule_search_locations:
        base = list(spec.submodule_search_locations)[0]
        candidates.append(os.path.join(base, "backends", "nvidia", "bin", name))
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            candidates.append(os.path.join(os.environ[env], "bin", name))
    candidates.append(os.path.join("/usr/local/cuda/bin", name))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def demangle(names: list[str]) -> dict[str, str]:
    cxxfilt = shutil.which("c++filt") or shutil.which("cu++filt")
    if not cxxfilt or not names:
        return {n: n for n in names}
    out = run([cxxfilt], input="\n".join(names) + "\n").stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def short_name(demangled: str) -> str:
    """`void ns::(anonymous namespace)::kern<c10::BFloat16, true>(Args...)` ->
    `kern<BFloat16, true>`: the name and template arguments, without namespaces."""
    name = demangled.strip()
    if name.endswith(")"):  # drop the parameter list: the last balanced (...) group
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += name[i] == ")"
            depth -= name[i] == "("
            if depth == 0:
                name = name[:i]
                break
    name = re.sub(r"^void\s+", "", name)  # kernels return void
    name = name.replace("(anonymous namespace)::", "")
    name = re.sub(r"\b[A-Za-z_]\w*::", "", name)
    return name


# --- SASS and resource usage ---------------------------------------------------------------


def access_bits(opcode: str) -> int:
    parts = opcode.split(".")
    if parts[0] in BULK_COPIES:
        return BULK_BITS
    bits = 32
    for mod in parts[1:]:
        bits = SIZE_MODIFIERS.get(mod, bits)
    return bits


def split_sass(sass: str) -> dict[str, list[str]]:
    """cuobjdump -sass output -> {mangled function name: instruction lines}."""
    functions: dict[str, list[str]] = {}
    current = None
    for line in sass.splitlines():
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            current = m.group(1)
            functions[current] = []
        elif current is not None and SASS_INSN_RE.search(line):
            functions[current].append(line)
    return functions


def memory_widths(lines: list[str]) -> dict:
    """Widest global load/store, the first instruction of that width as evidence, a histogram
    of widths, and whether local memory is touched (STL/LDL)."""
    result = {
        "load_bits": 0,
        "store_bits": 0,
        "load_evidence": None,
        "store_evidence": None,
        "load_widths": {},
        "store_widths": {},
        "local_accesses": 0,
    }
    for line in lines:
        opcode = SASS_INSN_RE.search(line).group(1)
        head = opcode.split(".")[0]
        if head in ("STL", "LDL"):
            result["local_accesses"] += 1
            continue
        if head in GLOBAL_LOADS or head in ("UTMALDG", "UBLKCP"):
            kind = "load"
        elif head in GLOBAL_STORES or head == "UTMASTG":
            kind = "store"
        else:
            continue
        bits = access_bits(opcode)
        widths = result[f"{kind}_widths"]
        widths[str(bits)] = widths.get(str(bits), 0) + 1
        if bits > result[f"{kind}_bits"]:
            result[f"{kind}_bits"] = bits
            evidence = re.sub(r"\s*/\* 0x[0-9a-f]+ \*/\s*$", "", line)
            result[f"{kind}_evidence"] = re.sub(r"\s+", " ", evidence).strip()
    return result


def resource_usage(cuobjdump: str, cubin: str) -> dict[str, dict]:
    out = run([cuobjdump, "--dump-resource-usage", cubin]).stdout
    return {
        m.group(1): {
            "registers": int(m.group(2)),
            "stack": int(m.group(3)),
            "static_shared": int(m.group(4)),
            "local": int(m.group(5)),
        }
        for m in RESOURCE_RE.finditer(out)
    }


def parse_ptxas_log(log: str) -> dict[str, dict]:
    """`-Xptxas -v` output -> {mangled entry name: registers, smem, stack, spill bytes}."""
    kernels: dict[str, dict] = {}
    current = None
    for line in log.splitlines():
        m = ENTRY_RE.search(line)
        if m:
            current = kernels.setdefault(m.group(1), {})
            continue
        if current is None:
            continue
        m = SPILL_RE.search(line)
        if m:
            current.update(
                stack_frame=int(m.group(1)),
                spill_stores=int(m.group(2)),
                spill_loads=int(m.group(3)),
            )
        m = USED_RE.search(line)
        if m:
            current["registers"] = int(m.group(1))
            sm = SMEM_RE.search(line)
            current["ptxas_smem"] = int(sm.group(1)) if sm else 0
    return kernels


def judge(row: dict) -> dict:
    """Fill in status and reasons from the measured row and its requirements."""
    reasons = list(row.get("errors", []))
    if row.get("spill_stores", 0) or row.get("spill_loads", 0):
        reasons.append(
            f"spills: {row.get('spill_stores', 0)} B stored, {row.get('spill_loads', 0)} B loaded"
        )
    elif row.get("local", 0) and row.get("local_accesses", 0) and row.get("spill_stores") is None:
        reasons.append(f"{row['local']} B of local memory in use (STL/LDL in the SASS)")
    for kind in ("load", "store"):
        need = row.get(f"min_{kind}_bits") if row.get("bandwidth_bound") else None
        have = row.get(f"{kind}_bits", 0)
        if need and have < need:
            reasons.append(
                f"widest global {kind} is {have or 'no'}-bit, needs {need}-bit"
                + (f" ({row[f'{kind}_evidence']})" if row.get(f"{kind}_evidence") else "")
            )
    row["status"] = "FAIL" if reasons else "OK"
    row["reasons"] = reasons
    return row


# --- arithmetic of the generated code ------------------------------------------------------

# A contracted multiply-add (fma.rn.f32, fma.rn.ftz.f32, fma.rn.sat.f32, fma.rn.f64).
PTX_FMA_RE = re.compile(r"^\s*(?:@!?%p\w+\s+)?fma\.rn(?:\.ftz)?(?:\.sat)?\.f(?:32|64)\b.*$", re.M)
# A floating max without .NaN (max.f32, max.ftz.f32, max.f64, max.f16x2, ...).
PTX_MAX_RE = re.compile(
    r"^\s*(?:@!?%p\w+\s+)?(max(?:\.[A-Za-z0-9]+)*\.(?:f|bf)\d+(?:x2)?)\b.*$", re.M
)
TTIR_DEF_RE = re.compile(r"^\s*(%[\w.$-]+)(?::\d+)?\s*=\s*([a-z_]+\.[\w.]+)\s*(.*)$")
TTIR_USE_RE = re.compile(r"%[\w.$-]+")
TTIR_INT32_RE = re.compile(r":\s*(?:i32|tensor<[^>]*xi32>)\s*(?:loc\(|$)")
# Ops whose 32-bit result can exceed the operands' range (a wrap); divisions, remainders and
# min/max cannot.
WRAPPING_OPS = ("arith.muli", "arith.addi", "arith.subi", "arith.shli")
# Ops that carry a row count unchanged (up to an offset) from the argument to a comparison.
COUNT_OPS = (
    "tt.splat",
    "tt.broadcast",
    "tt.expand_dims",
    "arith.extsi",
    "arith.subi",
    "arith.addi",
)


def _ttir_ops(ttir: str):
    """(result, op, operand names, text) for each single-line definition of the TTIR; `loc(...)`
    annotations and `%x#0` result indices are dropped."""
    for line in ttir.splitlines():
        m = TTIR_DEF_RE.match(line)
        if not m:
            continue
        result, op, rest = m.groups()
        rest = re.sub(r"\bloc\(.*$", "", rest)
        operands = [u.split("#")[0] for u in TTIR_USE_RE.findall(rest)]
        yield result, op, operands, rest


def row_index_errors(ttir: str, count_args: list[str]) -> list[str]:
    """Comparisons of a row count with a row index computed in 32 bits from the program id.

    Taint: ``pid`` flows from tt.get_program_id through everything but loads; ``wrap`` starts
    at a 32-bit multiply/add/subtract/shift with a ``pid`` operand and flows the same way;
    ``count`` flows from the row count arguments through splats, extensions and offsets.
    An arith.cmpi between a ``count`` operand and a ``wrap`` one is the defect: an index
    formed as program_id * BLOCK + arange in int32 wraps negative past 2**31 rows and passes
    ``rows < n`` (and ``minimum(rows, n - 1)``). Row arithmetic in int64 (program_id
    extended before the multiply) leaves no ``wrap`` operand there."""
    pid: set[str] = set()
    wrap: set[str] = set()
    count = {f"%{a}" for a in count_args}
    errors, compared = [], set()
    for result, op, operands, rest in _ttir_ops(ttir):
        if op == "tt.get_program_id":
            pid.add(result)
            continue
        if op == "tt.load":
            continue
        if any(o in pid for o in operands):
            pid.add(result)
            if op in WRAPPING_OPS and TTIR_INT32_RE.search(" " + rest.strip()):
                wrap.add(result)
        if any(o in wrap for o in operands):
            wrap.add(result)
        if op in COUNT_OPS and any(o in count for o in operands):
            count.add(result)
        if op == "arith.cmpi":
            counted = [o for o in operands if o in count]
            if counted:
                compared.update(counted)
                wrapped = [o for o in operands if o in wrap and o not in count]
                if wrapped:
                    errors.append(
                        f"row index {wrapped[0]} is computed in int32 from the program id and "
                        f"compared with the row count ({op} {rest.strip()[:120]})"
                    )
    if not compared:
        errors.append(f"no comparison with the row count {count_args} found in the TTIR")
    return errors[:3]


# Ops whose result can reach a size argument's full range (a product or sum of sizes may be as
# large as the launcher allows); differences, divisions, remainders and minima stay below it.
SIZE_OPS = ("tt.splat", "tt.broadcast", "tt.expand_dims", "arith.muli", "arith.addi")
TTIR_CONST_RE = re.compile(r"^(?:dense<)?(-?\d+)>?\s*:")


def size_overflow_errors(ttir: str, size_args: list[str]) -> list[str]:
    """32-bit additions of a positive constant to a value that may be as large as a size
    argument: ``size`` flows from the arguments through SIZE_OPS; an arith.addi in i32 with a
    ``size`` operand and a positive arith.constant (scalar or splat) is the defect. tl.cdiv(S,
    BLOCK) compiles to exactly that (S + (BLOCK - 1)); (S - 1) // BLOCK + 1 adds its 1 to a
    quotient, which is not ``size``."""
    constants: dict[str, int] = {}
    size = {f"%{a}" for a in size_args}
    errors, seen = [], set()
    for result, op, operands, rest in _ttir_ops(ttir):
        if op == "arith.constant":
            m = TTIR_CONST_RE.match(rest.strip())
            if m:
                constants[result] = int(m.group(1))
            continue
        sized = [o for o in operands if o in size]
        seen.update(o for o in sized if o[1:] in size_args)
        if op not in SIZE_OPS or not sized:
            continue
        if op == "arith.addi" and TTIR_INT32_RE.search(" " + rest.strip()):
            added = [constants[o] for o in operands if o in constants and o not in size]
            if any(c > 0 for c in added):
                errors.append(
                    f"{sized[0]} + {max(added)} in int32 wraps for sizes within {max(added)} "
                    f"of 2**31 (tl.cdiv? use (x - 1) // d + 1): {op} {rest.strip()[:120]}"
                )
        size.add(result)
    missing = [a for a in size_args if f"%{a}" not in seen]
    if missing:
        errors.append(f"size arguments {missing} are not used in the TTIR")
    return errors[:3]


def codegen_errors(spec: dict, ptx: str, ttir: str) -> list[str]:
    """The spec's arithmetic requirements (module docstring) checked on its PTX and TTIR."""
    errors = []
    if spec.get("separate_rounding"):
        fma = PTX_FMA_RE.findall(ptx)
        if fma:
            errors.append(
                f"{len(fma)} contracted FMA(s) where the reference rounds the products and the "
                f"sum separately (launch with enable_fp_fusion=False): {fma[0].strip()}"
            )
    if spec.get("nan_propagating_max"):
        plain = [m for m in PTX_MAX_RE.findall(ptx) if ".NaN" not in m]
        if plain:
            errors.append(
                f"{len(plain)} floating max(es) that drop NaN ({plain[0]}); use "
                "tl.maximum(..., propagate_nan=tl.PropagateNan.ALL)"
            )
        elif "max.NaN" not in ptx:
            errors.append("no max.NaN in the PTX: the row max this check looks for is gone")
    if spec.get("row_count_args"):
        errors += row_index_errors(ttir, spec["row_count_args"])
    if spec.get("size_args"):
        errors += size_overflow_errors(ttir, spec["size_args"])
    return errors


# --- Triton ---------------------------------------------------------------------------------


# One module per Triton module: tools/triton_specs/<op>.py, whose static_compile_specs() lists
# what the launchers of cookbook_ops/triton/<op>.py compile.
SPECS_DIR = os.path.join(ROOT, "tools", "triton_specs")


def _load_specs(name: str, path: str):
    spec = importlib.util.spec_from_file_location(f"triton_specs.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def triton_modules() -> list[str]:
    package_dir = os.path.join(ROOT, "cookbook_ops", "triton")
    if not os.path.isdir(package_dir):
        return []
    return sorted(
        f"cookbook_ops.triton.{m.name}"
        for m in pkgutil.iter_modules([package_dir])
        if not m.name.startswith("_")
    )


def compile_triton_spec(spec: dict, arch: int, workdir: str, tools: dict) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = spec["fn"]
    row = {
        "backend": "triton",
        "kernel": spec["name"],
        "function": fn.__name__,
        "bandwidth_bound": bool(spec.get("bandwidth_bound")),
        "min_load_bits": spec.get("min_load_bits"),
        "min_store_bits": spec.get("min_store_bits"),
        "errors": [],
    }
    constexprs = dict(spec.get("constexprs", {}))
    # ASTSource wants every argument in the signature, constexprs typed "constexpr".
    signature = {}
    for arg in fn.arg_names:
        signature[arg] = "constexpr" if arg in constexprs else spec["signature"].get(arg)
        if signature[arg] is None:
            row["errors"].append(f"signature has no type for argument {arg!r}")
    unknown = [a for a in spec.get("aligned_args", []) if a not in fn.arg_names]
    if unknown:
        row["errors"].append(f"aligned_args not in the kernel's arguments: {unknown}")
    if row["errors"]:
        return judge(row)
    # What the launcher's specialisation does for 16-byte-aligned pointers and multiples of 16.
    attrs = {
        (fn.arg_names.index(a),): [["tt.divisibility", 16]] for a in spec.get("aligned_args", [])
    }
    options = {"num_warps": spec.get("num_warps", 4)}
    for key in ("num_stages", "num_ctas", "maxnreg", "enable_fp_fusion"):
        if spec.get(key) is not None:
            options[key] = spec[key]
    try:
        src = ASTSource(fn, signature, constexprs=constexprs, attrs=attrs)
        kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
    except Exception as exc:  # a compile error is a result to report, not a crash
        row["errors"].append(f"compile failed: {type(exc).__name__}: {str(exc).strip()[:400]}")
        return judge(row)

    base = os.path.join(workdir, spec["name"])
    with open(base + ".cubin", "wb") as f:
        f.write(kernel.asm["cubin"])
    with open(base + ".ptx", "w") as f:
        f.write(kernel.asm["ptx"])
    with open(base + ".ttir", "w") as f:
        f.write(kernel.asm["ttir"])
    row["errors"] += codegen_errors(spec, kernel.asm["ptx"], kernel.asm["ttir"])
    # Triton's cached compile keeps no ptxas log, so rerun ptxas on its PTX with the flags
    # Triton uses, for the spill figures. Without ptxas, STL/LDL in the SASS stand in for them.
    ptxas = {}
    if tools["ptxas"]:
        ptx_arch = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
        log = run(
            [
                tools["ptxas"],
                "-lineinfo",
                "-v",
                "--regAllocOptLevel=2",
                f"--gpu-name={ptx_arch}",
                base + ".ptx",
                "-o",
                base + ".ptxas.cubin",
            ]
        )
        with open(base + ".ptxas.log", "w") as f:
            f.write(log.stdout + log.stderr)
        ptxas = next(iter(parse_ptxas_log(log.stdout + log.stderr).values()), {})

    usage = next(iter(resource_usage(tools["cuobjdump"], base + ".cubin").values()), {})
    sass = run([tools["cuobjdump"], "-sass", base + ".cubin"]).stdout
    with open(base + ".sass", "w") as f:
        f.write(sass)
    lines = next(iter(split_sass(sass).values()), [])
    # Triton allocates its shared memory dynamically, so the cubin's static figure misses it.
    dynamic_shared = kernel.metadata.shared or 0
    row.update(
        registers=usage.get("registers", ptxas.get("registers")),
        shared=dynamic_shared + usage.get("static_shared", 0),
        local=usage.get("local", 0) + usage.get("stack", 0),
        spill_stores=ptxas.get("spill_stores"),
        spill_loads=ptxas.get("spill_loads"),
        num_warps=options["num_warps"],
        **memory_widths(lines),
    )
    return judge(row)


def check_triton(arch: int, workdir: str, tools: dict, match: str | None = None) -> list[dict]:
    rows = []
    modules = triton_modules()
    if not modules:
        print("triton: no modules under cookbook_ops/triton/")
    sys.path.insert(0, ROOT)
    for module_name in modules:
        try:
            importlib.import_module(module_name)  # the kernels import (and register) cleanly
        except Exception as exc:
            rows.append(
                judge(
                    {
                        "backend": "triton",
                        "kernel": module_name,
                        "errors": [f"import failed: {type(exc).__name__}: {exc}"],
                    }
                )
            )
            continue
        short = module_name.rsplit(".", 1)[1]
        spec_path = os.path.join(SPECS_DIR, f"{short}.py")
        if not os.path.exists(spec_path):
            rows.append(
                judge(
                    {
                        "backend": "triton",
                        "kernel": module_name,
                        "errors": [f"no static compile specs: write tools/triton_specs/{short}.py"],
                    }
                )
            )
            continue
        try:
            specs = _load_specs(short, spec_path).static_compile_specs()
        except Exception as exc:
            rows.append(
                judge(
                    {
                        "backend": "triton",
                        "kernel": module_name,
                        "errors": [f"static_compile_specs() failed: {exc!r}"],
                    }
                )
            )
            continue
        for spec in specs:
            if match is None or match in spec["name"]:
                rows.append(compile_triton_spec(spec, arch, workdir, tools))
    return rows


# --- CUDA C++ -------------------------------------------------------------------------------


def cxx_standard() -> str:
    """The C++ standard torch's headers need, as recorded in its CMake config."""
    import torch.utils

    config = os.path.join(torch.utils.cmake_prefix_path, "Torch", "TorchConfig.cmake")
    try:
        with open(config) as f:
            m = re.search(r"CXX_STANDARD (\d+)", f.read())
    except OSError:
        m = None
    return f"c++{m.group(1) if m else 17}"


def nvcc_command(source: str, cubin: str, arch: int) -> list[str]:
    """The flags the torch extension build gives nvcc, device side only (-cubin skips the host
    compile, which is half the time and irrelevant to the SASS)."""
    import site

    import torch
    from torch.utils import cpp_extension

    includes = [os.path.join(ROOT, "csrc", "include")]
    includes += cpp_extension.include_paths(device_type="cuda")
    for base in site.getsitepackages() + [site.getusersitepackages()]:
        for sub in ("nvidia/cu13/include", "nvidia/cusparse/include"):
            if os.path.isdir(os.path.join(base, sub)):
                includes.append(os.path.join(base, sub))
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [
        find_tool("nvcc") or "nvcc",
        "-cubin",
        source,
        "-o",
        cubin,
        f"-arch=sm_{arch}",
        f"-std={cxx_standard()}",
        "-O3",
        "-lineinfo",
        "-Xptxas",
        "-v",
        "-DCOOKBOOK_OPS_EXTENSION",
        "-DTORCH_API_INCLUDE_EXTENSION_H",
        "-DTORCH_EXTENSION_NAME=_C",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        *cpp_extension.COMMON_NVCC_FLAGS,
        *[f"-I{d}" for d in includes],
    ]


def compile_cuda_source(source: str, arch: int, workdir: str) -> dict:
    stem = os.path.splitext(os.path.basename(source))[0]
    cubin = os.path.join(workdir, stem + ".cubin")
    cmd = nvcc_command(source, cubin, arch)
    start = time.monotonic()
    proc = run(cmd, cwd=ROOT)
    log = proc.stdout + proc.stderr
    with open(os.path.join(workdir, stem + ".nvcc.log"), "w") as f:
        f.write(" ".join(cmd) + "\n\n" + log)
    return {
        "source": source,
        "stem": stem,
        "cubin": cubin,
        "rc": proc.returncode,
        "log": log,
        "seconds": time.monotonic() - start,
    }


def cuda_requirements(name: str) -> tuple[int | None, int | None]:
    for pattern, load_bits, store_bits in CUDA_WIDTH_RULES:
        if pattern in name:
            return load_bits, store_bits
    return None, None


def analyse_cuda(result: dict, tools: dict) -> list[dict]:
    rel = os.path.relpath(result["source"], ROOT)
    if result["rc"] != 0:
        errors = [line for line in result["log"].splitlines() if "error" in line.lower()][:5]
        return [
            judge(
                {
                    "backend": "cuda",
                    "kernel": rel,
                    "source": rel,
                    "errors": ["nvcc failed: " + (" | ".join(errors) or result["log"][-400:])],
                }
            )
        ]
    ptxas = parse_ptxas_log(result["log"])
    usage = resource_usage(tools["cuobjdump"], result["cubin"])
    sass = run([tools["cuobjdump"], "-sass", result["cubin"]]).stdout
    with open(os.path.splitext(result["cubin"])[0] + ".sass", "w") as f:
        f.write(sass)
    functions = split_sass(sass)
    names = sorted(set(ptxas) | set(usage) | set(functions))
    pretty = demangle(names)
    rows = []
    for mangled in names:
        readable = short_name(pretty[mangled])
        min_load, min_store = cuda_requirements(readable)
        p, u = ptxas.get(mangled, {}), usage.get(mangled, {})
        row = {
            "backend": "cuda",
            "kernel": readable,
            "function": mangled,
            "source": rel,
            "min_load_bits": min_load,
            "min_store_bits": min_store,
            "bandwidth_bound": bool(min_load or min_store),
            "registers": u.get("registers", p.get("registers")),
            "shared": max(u.get("static_shared", 0), p.get("ptxas_smem", 0)),
            "local": u.get("local", 0) + u.get("stack", 0),
            "stack_frame": p.get("stack_frame"),
            "spill_stores": p.get("spill_stores"),
            "spill_loads": p.get("spill_loads"),
            "errors": [],
            **memory_widths(functions.get(mangled, [])),
        }
        rows.append(judge(row))
    return rows


# --- output ---------------------------------------------------------------------------------


def bits(value) -> str:
    return "-" if not value else ("TMA" if value >= BULK_BITS else str(value))


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    if not rows:
        print("  (no kernels)")
        return
    headers = [
        "kernel",
        "regs",
        "smem B",
        "local B",
        "spill st/ld B",
        "max LDG",
        "max STG",
        "needs L/S",
        "status",
    ]
    table = []
    for r in rows:
        spills = (
            "?"
            if r.get("spill_stores") is None
            else f"{r.get('spill_stores', 0)}/{r.get('spill_loads', 0)}"
        )
        table.append(
            [
                r["kernel"],
                str(r.get("registers", "-")),
                str(r.get("shared", "-")),
                str(r.get("local", "-")),
                spills if "registers" in r else "-",
                bits(r.get("load_bits")),
                bits(r.get("store_bits")),
                f"{bits(r.get('min_load_bits'))}/{bits(r.get('min_store_bits'))}",
                r["status"],
            ]
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*headers))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print(fmt.format(*t))
    print("SASS evidence (first instruction of the widest global load / store):")
    for r in rows:
        if "registers" not in r:
            continue
        print(f"  {r['kernel']}")
        print(f"    load : {r.get('load_evidence') or '(no global loads)'}")
        print(f"    store: {r.get('store_evidence') or '(no global stores)'}")
    failures = [r for r in rows if r["status"] == "FAIL"]
    for r in failures:
        for reason in r["reasons"]:
            print(f"FAIL {r['kernel']}: {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["triton", "cuda"], help="check one backend")
    parser.add_argument("--json", metavar="PATH", help="write every row to this JSON file")
    parser.add_argument("--keep", metavar="DIR", help="keep cubins, PTX, SASS and logs here")
    parser.add_argument("--arch", type=int, default=90, help="compute capability (default 90)")
    parser.add_argument(
        "--match", metavar="TEXT", help="only the Triton specs whose name contains TEXT"
    )
    args = parser.parse_args()

    tools = {name: find_tool(name) for name in ("cuobjdump", "ptxas", "nvcc")}
    if not tools["cuobjdump"]:
        print("FAIL: cuobjdump not found (it ships with triton and the CUDA toolkit)")
        return 1
    workdir = args.keep or tempfile.mkdtemp(prefix="gpu_static_check_")
    os.makedirs(workdir, exist_ok=True)
    start = time.monotonic()

    sources = []
    if args.only in (None, "cuda"):
        sources = (
            sorted(
                os.path.join(ROOT, "csrc", "cuda", f)
                for f in os.listdir(os.path.join(ROOT, "csrc", "cuda"))
                if f.endswith(".cu")
            )
            if os.path.isdir(os.path.join(ROOT, "csrc", "cuda"))
            else []
        )
        if sources and not tools["nvcc"]:
            print("FAIL: nvcc not found; it is needed to compile csrc/cuda/*.cu")
            return 1
    # nvcc runs in the background while Triton compiles in this process: two cores, two jobs.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1))
    futures = [pool.submit(compile_cuda_source, s, args.arch, workdir) for s in sources]

    rows: list[dict] = []
    if args.only in (None, "triton"):
        triton_start = time.monotonic()
        triton_rows = check_triton(args.arch, workdir, tools, args.match)
        print_table(
            f"Triton kernels, sm_{args.arch} ({time.monotonic() - triton_start:.0f}s)", triton_rows
        )
        rows += triton_rows
    if args.only in (None, "cuda"):
        cuda_rows = []
        seconds = 0.0
        for future in futures:
            result = future.result()
            seconds = max(seconds, result["seconds"])
            cuda_rows += analyse_cuda(result, tools)
        print_table(f"CUDA kernels (csrc/cuda), sm_{args.arch} (nvcc {seconds:.0f}s)", cuda_rows)
        rows += cuda_rows
    pool.shutdown()

    failed = [r for r in rows if r["status"] == "FAIL"]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"arch": f"sm_{args.arch}", "kernels": rows}, f, indent=1, default=str)
    if args.keep:
        print(f"\ncubins, PTX, SASS and logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\ngpu static check: {len(rows)} kernels, {len(failed)} failing, "
        f"{time.monotonic() - start:.0f}s -> {'FAIL' if failed else 'OK'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
