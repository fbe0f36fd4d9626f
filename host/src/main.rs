//! The `weir` binary: everything lives in the library; this is its edge.

fn main() -> std::process::ExitCode {
    weir::cli::main()
}
