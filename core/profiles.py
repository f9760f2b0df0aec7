"""Target hardware profiles: what a `target.hardware` name means for compression and serving.

Kept as plain data so the compiler, the compression stage and the Kubernetes
emitter read one definition of each device class.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    description: str
    precision: str
    """Numeric format the deployable model is quantized to."""
    execution_provider: str
    """ONNX Runtime execution provider used to measure and serve the model."""
    resources: dict[str, str]
    """Kubernetes container requests (limits are set equal) for one predictor replica."""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    pipeline_resources: dict[str, str] = field(default_factory=lambda: {"cpu": "4", "memory": "8Gi"})
    """Requests (= limits) of one cluster pipeline pod of the heavy stages (embed, train, compress, export,
    dependability) and of each PyTorchJob replica; the other stages get PIPELINE_LIGHT_RESOURCES."""
    pipeline_node_selector: dict[str, str] = field(default_factory=lambda: {"kubernetes.io/arch": "amd64"})
    """Where those pods run: the serving device class, or data-centre nodes for edge targets."""
    pipeline_tolerations: tuple[dict[str, str], ...] = ()
    int8_weight_bits: int = 8
    """Bits int8 weights use. 7 where the fleet may run x86 CPUs without VNNI: there ONNX Runtime's
    uint8 x int8 kernels add pairs of products in int16 (vpmaddubsw), which saturates when 8-bit weights meet
    large activations; 7-bit weights keep every pair in range (ONNX Runtime's `reduce_range`)."""
    serving_ms_per_gmac: float | None = None
    """Milliseconds one core takes per billion multiply-accumulates of a float32 ONNX model (int8 is faster, so
    this bounds it from above): what `model: auto` estimates a backbone's latency with before anything is
    trained. None where it was never measured; the compress stage always measures the real latency."""


PIPELINE_LIGHT_RESOURCES = {"cpu": "1", "memory": "2Gi"}
_GPU_TRAINING = {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
_GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


PROFILES: dict[str, HardwareProfile] = {
    p.name: p
    for p in (
        HardwareProfile(
            name="cpu-x86",
            description="x86-64 CPU nodes (AVX2/AVX-512, VNNI where present)",
            precision="int8",
            int8_weight_bits=7,  # a node pool mixes CPU generations: the file must be right on the oldest
            # EfficientNet-Lite0/1/2 at 224 px under ONNX Runtime on one x86 core (AVX2): 21-24 ms per GMAC
            serving_ms_per_gmac=24.0,
            execution_provider="CPUExecutionProvider",
            resources={"cpu": "1", "memory": "1Gi"},
            node_selector={"kubernetes.io/arch": "amd64"},
        ),
        HardwareProfile(
            name="cpu-arm",
            description="64-bit Arm CPU nodes (Graviton, Ampere)",
            precision="int8",
            execution_provider="CPUExecutionProvider",
            resources={"cpu": "1", "memory": "1Gi"},
            node_selector={"kubernetes.io/arch": "arm64"},
            pipeline_node_selector={"kubernetes.io/arch": "arm64"},  # latency is measured on the target CPU
        ),
        HardwareProfile(
            name="nvidia-t4",
            description="NVIDIA T4 GPU nodes",
            precision="fp16",
            execution_provider="CUDAExecutionProvider",
            resources={"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
            node_selector={"nvidia.com/gpu.product": "Tesla-T4"},
            tolerations=(_GPU_TOLERATION,),
            pipeline_resources=_GPU_TRAINING,
            pipeline_node_selector={"nvidia.com/gpu.product": "Tesla-T4"},
            pipeline_tolerations=(_GPU_TOLERATION,),
        ),
        HardwareProfile(
            name="jetson-orin",
            description="NVIDIA Jetson Orin edge devices (arm64 + integrated GPU)",
            precision="fp16",
            execution_provider="TensorrtExecutionProvider",
            resources={"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"},
            node_selector={"kubernetes.io/arch": "arm64", "nvidia.com/gpu.family": "orin"},
            tolerations=(_GPU_TOLERATION,),
            pipeline_resources=_GPU_TRAINING,  # trained on data-centre GPUs, served on the device
            pipeline_tolerations=(_GPU_TOLERATION,),
        ),
    )
}
