/// mimalloc instead of glibc's malloc: a request allocates and frees many small buffers on one
/// thread, which mimalloc's thread-local free lists serve in a fraction of glibc's instructions
/// (bench/REPORT.md has the figures). SQLite and aws-lc, written in C, still call glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portico_server::cli::main()
}
