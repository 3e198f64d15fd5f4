// macOS: leave CPython's symbols undefined until the host has loaded libpython.
fn main() {
    pyo3_build_config::add_extension_module_link_args();
}
