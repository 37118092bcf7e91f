use std::process::ExitCode;

use clap::Parser;

// Many threads (the runtime's and one per SQLite connection) allocate small,
// short-lived rows; mimalloc keeps them off a shared lock and returns memory
// to the system instead of growing an arena per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = secondlook::cli::Cli::parse();
    match secondlook::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
