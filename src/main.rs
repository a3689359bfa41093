//! The `nadc` binary: see `nadc --help` and the README.
fn main() -> std::process::ExitCode {
    nadc_cli::main()
}
