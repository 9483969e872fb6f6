//! libtorch (tch) glue: which device the model stage runs on, and what this build links.
//! It does not define models.

/// `--device auto|cpu|cuda`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

/// The libtorch version this build is pinned to (tch 0.26).
pub const LIBTORCH_VERSION: &str = "2.13.0";

#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    #[error("--device cuda was asked for, but CUDA is not available to libtorch (no GPU, no driver, or a CPU-only libtorch)")]
    NoCuda,
}

/// Resolves a device choice; `auto` takes CUDA device 0 when libtorch sees one.
pub fn select(choice: DeviceChoice) -> Result<tch::Device, TorchError> {
    match choice {
        DeviceChoice::Cpu => Ok(tch::Device::Cpu),
        DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
        DeviceChoice::Cuda => Err(TorchError::NoCuda),
        DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
    }
}

/// What libtorch reports about this machine.
#[derive(Debug, serde::Serialize)]
pub struct TorchInfo {
    pub libtorch: &'static str,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub cpu_threads: i32,
}

pub fn info() -> TorchInfo {
    TorchInfo {
        libtorch: LIBTORCH_VERSION,
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        cpu_threads: tch::get_num_threads(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_loads_and_computes_on_cpu() {
        let dev = select(DeviceChoice::Cpu).unwrap();
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to_device(dev);
        let s: f64 = t.sum(tch::Kind::Float).double_value(&[]);
        assert_eq!(s, 6.0);
        // auto must agree with what libtorch reports
        let auto = select(DeviceChoice::Auto).unwrap();
        assert_eq!(auto.is_cuda(), tch::Cuda::is_available());
    }
}
