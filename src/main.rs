//! The `nadc` binary: see `nadc --help` and the README.

/// Small allocations per row dominate a large answer's cost under glibc's
/// allocator; mimalloc's thread-local free lists take most of that out.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    nadc_cli::main()
}
