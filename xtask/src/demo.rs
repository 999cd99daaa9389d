pub fn run(_: &[String]) -> Result<(), String> {
    Err("todo".into())
}
