fn main() -> std::process::ExitCode {
    shipper::cli::main()
}
