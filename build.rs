//! Link-time glue for libtorch (see shared/notes/dependencies.md):
//! embed an rpath to the libtorch directory so the binaries run without LD_LIBRARY_PATH,
//! and keep `libtorch_cuda.so` linked (rustc's `--as-needed` would drop it, and then
//! `tch::Cuda::is_available()` is silently false on a GPU host).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
