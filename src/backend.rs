//! Which device trains: WebGPU (or native wgpu) when it works, the flex CPU backend otherwise.
//!
//! burn's wgpu runtime can be initialised once per process (once per page in the browser), so
//! [`acquire`] initialises it on first use and hands every later caller the same device.

#[cfg(engine)]
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use serde::{Deserialize, Serialize};

/// The family of backend a [`ComputeDevice`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendKind {
    /// burn's wgpu backend on the browser's WebGPU.
    WebGpu,
    /// burn's wgpu backend natively (Vulkan, Metal, DX12).
    NativeWgpu,
    /// burn's pure-Rust CPU backend.
    Flex,
}

impl BackendKind {
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::WebGpu => "WebGPU",
            BackendKind::NativeWgpu => "wgpu (native)",
            BackendKind::Flex => "flex (CPU)",
        }
    }
}

/// What the page and `gdl-lab doctor` show about the device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterSummary {
    pub backend: BackendKind,
    /// The adapter's own description, e.g. "SwiftShader Device (Subzero)".
    pub name: String,
    /// Vendor and architecture as far as the platform reports them; empty when it does not.
    pub architecture: String,
    /// A CPU implementation of the GPU API (SwiftShader, lavapipe) or the browser's fallback
    /// adapter: it works, but slowly.
    pub software: bool,
    /// Largest buffer a kernel can use, in bytes: the smaller of WebGPU's `maxBufferSize` and
    /// `maxStorageBufferBindingSize` (`None` for the CPU backend).
    pub max_buffer_size: Option<u64>,
}

#[cfg(engine)]
/// A device ready for training, with what is known about it.
#[derive(Clone, Debug)]
pub struct ComputeDevice {
    pub device: Device,
    pub adapter: AdapterSummary,
    /// Set when the GPU could not be used: why the CPU backend is used instead.
    pub fallback_reason: Option<String>,
}

#[cfg(engine)]
impl ComputeDevice {
    /// The flex CPU backend, with the reason the GPU was not used (if it was wanted).
    pub fn flex(fallback_reason: Option<String>) -> Self {
        Self {
            device: Device::flex(),
            adapter: AdapterSummary {
                backend: BackendKind::Flex,
                name: format!("flex, burn's pure-Rust CPU backend, {}", cpu_description()),
                architecture: std::env::consts::ARCH.into(),
                software: true,
                max_buffer_size: None,
            },
            fallback_reason,
        }
    }

    pub fn is_gpu_backend(&self) -> bool {
        self.adapter.backend != BackendKind::Flex
    }

    /// One line for logs and the CLI.
    pub fn describe(&self) -> String {
        let mut line = format!("{}: {}", self.adapter.backend.label(), self.adapter.name);
        if !self.adapter.architecture.is_empty() {
            line.push_str(&format!(" [{}]", self.adapter.architecture));
        }
        if self.adapter.software {
            line.push_str(", software");
        }
        if let Some(bytes) = self.adapter.max_buffer_size {
            line.push_str(&format!(", max buffer {}", format_bytes(bytes)));
        }
        line
    }
}

#[cfg(engine)]
/// How many threads flex's convolutions use, and whether the browser's wasm runs their matrix
/// products on SIMD128: "2 threads", "1 thread, SIMD128". In the page each worker trains on one
/// thread (wasm threads would need a second, atomics-enabled build of the worker); the other
/// cores take shares of the batch in helper workers (`engine::helper_workers`).
pub fn cpu_description() -> String {
    let threads = cpu_threads();
    let simd = if cfg!(target_arch = "wasm32") && gemm::get_wasm_simd128() {
        ", SIMD128"
    } else {
        ""
    };
    format!(
        "{threads} thread{}{simd}",
        if threads == 1 { "" } else { "s" }
    )
}

#[cfg(engine)]
/// The threads flex trains on: rayon's pool natively, one in the browser's worker.
pub fn cpu_threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    {
        rayon::current_num_threads()
    }
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
}

/// The most voxels the net trains on and predicts on `device` (the working grid, after the
/// crop, when resampling is on). In the browser on the CPU or a software adapter 1 M (about
/// 100³, a BraTS head at ~1.4 mm): a whole-volume prediction takes ~10 s in wasm and the page
/// stays under 1 GiB (BENCHMARKS.md, f). On a hardware GPU in the browser, and natively, 2 M
/// (about 126³, a BraTS head at ~1.1 mm; 7 s natively on two CPU cores). `None`: no device
/// chosen yet, the CPU's budget.
pub fn working_voxel_budget(device: Option<&AdapterSummary>) -> usize {
    let hardware_gpu = device.is_some_and(|d| d.backend != BackendKind::Flex && !d.software);
    if cfg!(target_arch = "wasm32") && !hardware_gpu {
        1_000_000
    } else {
        2_000_000
    }
}

/// "1 GiB", "256 MiB": sizes as people read them.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(engine)]
fn looks_like_software(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["swiftshader", "llvmpipe", "lavapipe", "software", "warp"]
        .iter()
        .any(|marker| name.contains(marker))
}

/// Runs the wasm module's static constructors (the `inventory` registrations of CubeCL's shader
/// compiler), once. Call it first thing in the page and in each browser test.
///
/// Why by hand: a binary with `main` links as a wasm "command", and unless the code calls
/// `__wasm_call_ctors` itself, the linker makes *every* export run all constructors again: each
/// call from JavaScript into the module (promise callbacks, timers, WebGPU callbacks). Chrome's
/// profiler showed that as most of the page's ~0.8 s WebGPU step (BENCHMARKS.md, "d"). This
/// explicit call is the fix the `inventory` crate documents.
#[cfg(target_arch = "wasm32")]
pub fn run_static_constructors() {
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }
    static DONE: std::sync::Once = std::sync::Once::new();
    // SAFETY: the linker-made function runs every constructor of the module; `Once` makes that
    // happen once, before anything that reads the registrations (shader compilation).
    DONE.call_once(|| unsafe { __wasm_call_ctors() });
}

#[cfg(engine)]
/// Initialise burn's wgpu runtime and describe the adapter it picked.
///
/// Call at most once per process: a second initialisation fails in burn. Use [`acquire`].
pub async fn init_wgpu() -> Result<ComputeDevice, String> {
    #[cfg(target_arch = "wasm32")]
    run_static_constructors();
    #[cfg(target_arch = "wasm32")]
    let browser = web::probe_adapter().await?;

    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|error| format!("burn could not initialise wgpu: {error}"))?;
    setup.device.set_device_lost_callback(|reason, message| {
        if let Ok(mut lost) = GPU_LOST.lock() {
            *lost = Some(format!("the GPU device was lost ({reason:?}: {message})"));
        }
    });
    let info = setup.adapter.get_info();
    // A kernel binds each tensor as a storage buffer, so the largest usable tensor is the
    // smaller of the two limits (Chrome grants 128 MiB of binding unless asked for more).
    let limits = setup.device.limits();
    let max_buffer_size = Some(
        limits
            .max_buffer_size
            .min(limits.max_storage_buffer_binding_size),
    );
    let cpu_type = info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu;

    #[cfg(target_arch = "wasm32")]
    let adapter = AdapterSummary {
        backend: BackendKind::WebGpu,
        software: cpu_type
            || browser.is_fallback
            || looks_like_software(&info.name)
            || looks_like_software(&browser.architecture),
        // Chrome often leaves the description empty; the architecture still names the adapter.
        name: [info.name, browser.description, browser.architecture.clone()]
            .into_iter()
            .find(|name| !name.is_empty())
            .unwrap_or_else(|| "unnamed WebGPU adapter".into()),
        architecture: browser.architecture,
        max_buffer_size,
    };
    #[cfg(not(target_arch = "wasm32"))]
    let adapter = AdapterSummary {
        backend: BackendKind::NativeWgpu,
        software: cpu_type || looks_like_software(&info.name),
        architecture: [format!("{:?}", info.backend), info.driver, info.driver_info]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        name: info.name,
        max_buffer_size,
    };
    Ok(ComputeDevice {
        device,
        adapter,
        fallback_reason: None,
    })
}

#[cfg(engine)]
static ACQUIRED: async_once_cell::OnceCell<ComputeDevice> = async_once_cell::OnceCell::new();

#[cfg(engine)]
/// Set by wgpu's device-lost callback (a driver reset, the browser reclaiming the GPU).
static GPU_LOST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

#[cfg(engine)]
/// Why the GPU device was lost, once it has been; the engine stops training on it and offers
/// the CPU or a fresh device.
pub fn gpu_lost() -> Option<String> {
    GPU_LOST.lock().ok()?.clone()
}

#[cfg(engine)]
/// The device this process trains on: wgpu if it initialises, flex with a reason otherwise.
/// The first call initialises; every later call gets the same device.
pub async fn acquire() -> ComputeDevice {
    ACQUIRED
        .get_or_init(async {
            match init_wgpu().await {
                Ok(device) => device,
                Err(reason) => ComputeDevice::flex(Some(reason)),
            }
        })
        .await
        .clone()
}

#[cfg(engine)]
#[cfg(target_arch = "wasm32")]
mod web {
    //! Asks the browser about WebGPU directly. burn reports neither a missing `navigator.gpu`
    //! nor the adapter's architecture and fallback flag, and a clear sentence needs them.
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    pub struct BrowserAdapter {
        pub description: String,
        pub architecture: String,
        pub is_fallback: bool,
    }

    fn get(target: &JsValue, key: &str) -> JsValue {
        Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    fn text(target: &JsValue, key: &str) -> String {
        get(target, key).as_string().unwrap_or_default()
    }

    pub async fn probe_adapter() -> Result<BrowserAdapter, String> {
        // `navigator` of the page or of the worker, whichever this runs in.
        let navigator = get(&js_sys::global(), "navigator");
        let gpu = get(&navigator, "gpu");
        if gpu.is_undefined() || gpu.is_null() {
            return Err(
                "this browser does not offer WebGPU (navigator.gpu is missing); \
                 use a recent Chrome, or enable WebGPU as the README explains"
                    .into(),
            );
        }
        let request: Function = get(&gpu, "requestAdapter")
            .dyn_into()
            .map_err(|_| "navigator.gpu.requestAdapter is not a function")?;
        let promise: Promise = request
            .call0(&gpu)
            .map_err(|error| format!("requestAdapter failed: {error:?}"))?
            .dyn_into()
            .map_err(|_| "requestAdapter did not return a promise")?;
        let adapter = JsFuture::from(promise)
            .await
            .map_err(|error| format!("requestAdapter failed: {error:?}"))?;
        if adapter.is_null() || adapter.is_undefined() {
            return Err(
                "WebGPU is present but offers no adapter (the GPU may be blocklisted \
                 or disabled); see the README for how to enable it"
                    .into(),
            );
        }
        let info = get(&adapter, "info");
        let vendor = text(&info, "vendor");
        let architecture = text(&info, "architecture");
        let is_fallback = get(&info, "isFallbackAdapter").as_bool().unwrap_or(false)
            || get(&adapter, "isFallbackAdapter")
                .as_bool()
                .unwrap_or(false);
        Ok(BrowserAdapter {
            description: text(&info, "description"),
            architecture: [vendor, architecture]
                .into_iter()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            is_fallback,
        })
    }
}

/// Lets the browser run its event loop (paint, input) before the caller goes on; natively a
/// no-op. Long CPU work on the page's thread calls this between chunks, so that no chunk
/// becomes a long task.
pub async fn yield_now() {
    #[cfg(target_arch = "wasm32")]
    gloo_timers::future::TimeoutFuture::new(0).await;
}

/// `tensors` copied to the CPU in one asynchronous transfer (a `burn::tensor::Transaction`): a
/// synchronous read panics in the browser, and reading tensor by tensor waits on the device once
/// per tensor.
#[cfg(engine)]
pub async fn read_all<const D: usize>(tensors: Vec<Tensor<D>>) -> Result<Vec<TensorData>, String> {
    tensors
        .into_iter()
        .fold(Transaction::default(), |transaction, tensor| {
            transaction.register(tensor)
        })
        .execute_async()
        .await
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(format_bytes(1 << 30), "1 GiB");
        assert_eq!(format_bytes(268_435_456), "256 MiB");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(12), "12 B");
    }

    #[test]
    fn software_adapters_are_recognised() {
        assert!(looks_like_software("SwiftShader Device (Subzero)"));
        assert!(looks_like_software("llvmpipe (LLVM 15.0.6, 256 bits)"));
        assert!(!looks_like_software("NVIDIA GeForce RTX 4090"));
    }
}
