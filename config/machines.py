"""Which machines Vertex AI serves predictions on, and which accelerators come with or attach to them.

The machine-type, accelerator-type and machine/accelerator/count checks of the rules table
(config/rules.py, whose docstring lists the sources: [compute], [types]); the rollout config
(config/target.py) and our provider (provider/deployment.py) call them. Each check returns
`None` when the value is allowed, else the message, ending with `allowed: ...`. Standard
library only, like config/rules.py: the provider imports it from its own virtualenv.
"""

from __future__ import annotations

import re

# [types] machine_resources.py MachineSpec.accelerator_type / accelerator_types.py AcceleratorType
# (K80 is out of support and left out).
ACCELERATOR_TYPES = (
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
    "NVIDIA_H100_80GB",
    "NVIDIA_H100_MEGA_80GB",
    "NVIDIA_H200_141GB",
    "NVIDIA_B200",
    "TPU_V2",
    "TPU_V3",
    "TPU_V4_POD",
    "TPU_V5_LITEPOD",
)

# [compute] CPU-only machine series for prediction: the E2 and N1 sizes as the page lists
# them; for the other series the page's kinds, any size Compute Engine has.
CPU_SIZES = {
    ("e2", "standard"): (2, 4, 8, 16, 32),
    ("e2", "highmem"): (2, 4, 8, 16),
    ("e2", "highcpu"): (2, 4, 8, 16, 32),
    ("n1", "standard"): (2, 4, 8, 16, 32),
    ("n1", "highmem"): (2, 4, 8, 16, 32),
    ("n1", "highcpu"): (4, 8, 16, 32),
}
CPU_SERIES = ("e2", "n1", "n2", "n2d", "n4", "c2", "c2d", "c3", "c3d", "c4")
CPU_KINDS = ("standard", "highmem", "highcpu")

# [compute] GPUs that attach to N1 machine types: GPU count -> most vCPUs the machine may have.
N1_GPUS = {
    "NVIDIA_TESLA_T4": {1: 48, 2: 48, 4: 96},
    "NVIDIA_TESLA_P4": {1: 24, 2: 48, 4: 96},
    "NVIDIA_TESLA_P100": {1: 16, 2: 32, 4: 96},
    "NVIDIA_TESLA_V100": {1: 12, 2: 24, 4: 48, 8: 96},
}

# [compute] Accelerator-optimized machine types: each comes with a fixed accelerator and count.
FIXED_ACCELERATORS: dict[str, tuple[str, int]] = {
    **{f"a2-highgpu-{n}g": ("NVIDIA_TESLA_A100", n) for n in (1, 2, 4, 8)},
    "a2-megagpu-16g": ("NVIDIA_TESLA_A100", 16),
    **{f"a2-ultragpu-{n}g": ("NVIDIA_A100_80GB", n) for n in (1, 2, 4, 8)},
    **{f"a3-highgpu-{n}g": ("NVIDIA_H100_80GB", n) for n in (1, 2, 4, 8)},
    "a3-megagpu-8g": ("NVIDIA_H100_MEGA_80GB", 8),
    "a3-ultragpu-8g": ("NVIDIA_H200_141GB", 8),
    "a4-highgpu-8g": ("NVIDIA_B200", 8),
    **{f"g2-standard-{n}": ("NVIDIA_L4", {24: 2, 48: 4, 96: 8}.get(n, 1)) for n in (4, 8, 12, 16, 24, 32, 48, 96)},
    # Cloud TPU v5e, the TPU that serves online predictions.
    **{f"ct5lp-hightpu-{n}t": ("TPU_V5_LITEPOD", n) for n in (1, 4, 8)},
}
MACHINE_EXAMPLES = "'n1-standard-4', 'e2-standard-8', 'g2-standard-12', 'a2-highgpu-1g'"


def _cpu_machine(machine_type: str) -> tuple[str, str, int] | None:
    match = re.fullmatch(r"([a-z][a-z0-9]*)-(standard|highmem|highcpu)-([1-9][0-9]*)", machine_type)
    if not match or match[1] not in CPU_SERIES:
        return None
    series, kind, size = match[1], match[2], int(match[3])
    sizes = CPU_SIZES.get((series, kind))
    return (series, kind, size) if sizes is None or size in sizes else None


def machine_type(value) -> str | None:
    """A machine type Vertex AI serves predictions on."""
    if isinstance(value, str) and (value in FIXED_ACCELERATORS or _cpu_machine(value)):
        return None
    listed = "; ".join(f"{s}-{k}-{'|'.join(map(str, n))}" for (s, k), n in CPU_SIZES.items())
    return (
        f"{value!r} is not a Vertex AI prediction machine type; allowed: {listed}; "
        f"{'|'.join(s for s in CPU_SERIES if s not in ('e2', 'n1'))}-<standard|highmem|highcpu>-<vCPUs>; "
        f"or an accelerator-optimized type ({', '.join(sorted(FIXED_ACCELERATORS))}); e.g. {MACHINE_EXAMPLES}"
    )


def accelerator_type(value) -> str | None:
    if value is None or value in ACCELERATOR_TYPES:
        return None
    return f"{value!r} is not a Vertex AI accelerator type; allowed: {', '.join(ACCELERATOR_TYPES)}"


def machine_spec(machine, accelerator, count) -> tuple[str, str] | None:
    """(field, message) when this machine, accelerator type and count are not a combination
    Vertex AI deploys on ([compute]); None when they are. `count` 0 or None: no accelerator."""
    for field, problem in (
        ("machine_type", machine_type(machine)),
        ("accelerator_type", accelerator_type(accelerator)),
    ):
        if problem:
            return field, problem
    count = count or 0
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return "accelerator_count", f"{count!r}; allowed: a whole number, 0 without an accelerator"
    fixed = FIXED_ACCELERATORS.get(machine)
    if fixed:
        kind, number = fixed
        if accelerator != kind or count != number:
            given = f"{accelerator} x {count}" if accelerator else "no accelerator"
            return (
                "accelerator_type" if accelerator != kind else "accelerator_count",
                f"{machine} comes with {number} {kind}, not {given}; allowed with {machine}: "
                f"accelerator_type = {kind!r}, accelerator_count = {number}",
            )
        return None
    cpu = _cpu_machine(machine)
    assert cpu is not None, "machine_type() accepted it and it is no accelerator-optimized type"
    series, _, vcpus = cpu
    if not accelerator:
        if count:
            return "accelerator_count", (
                f"{count} accelerator(s) but no accelerator_type; allowed: "
                f"accelerator_count = 0, or an accelerator_type "
                f"({', '.join(ACCELERATOR_TYPES)})"
            )
        return None
    if not count:
        return "accelerator_count", f"0 with accelerator_type {accelerator!r}; allowed: {_counts(accelerator, machine)}"
    if accelerator not in N1_GPUS:
        homes = [m for m, (kind, _) in FIXED_ACCELERATORS.items() if kind == accelerator]
        where = (
            f"one of {', '.join(homes)} (the accelerator comes with the machine)" if homes else "none for prediction"
        )
        return "accelerator_type", (
            f"{accelerator} cannot be attached to {machine}; allowed machine_type for {accelerator}: {where}"
        )
    if series != "n1":
        return "accelerator_type", (
            f"{accelerator} cannot be attached to {machine} ({series.upper()} machine "
            f"types take no accelerator); allowed: an n1-* machine type with "
            f"{accelerator}, or no accelerator on {machine}"
        )
    limits = N1_GPUS[accelerator]
    if count not in limits:
        return "accelerator_count", f"{count} x {accelerator}; allowed: {_counts(accelerator, machine)}"
    if vcpus > limits[count]:
        return "accelerator_count", (
            f"{count} x {accelerator} on {machine} ({vcpus} vCPUs): at most "
            f"{limits[count]} vCPUs "
            f"with {count}; allowed: {_counts(accelerator, machine)}"
        )
    return None


def _counts(accelerator: str, machine: str) -> str:
    if accelerator in N1_GPUS:
        vcpus = (_cpu_machine(machine) or ("", "", 0))[2]
        counts = [str(n) for n, most in N1_GPUS[accelerator].items() if vcpus <= most]
        return f"accelerator_count {', '.join(counts) or 'none (too many vCPUs)'} of {accelerator} on {machine}"
    fixed = FIXED_ACCELERATORS.get(machine)
    return f"accelerator_count {fixed[1]}" if fixed else "an accelerator_count from the machine's table"
