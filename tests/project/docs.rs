//! The troubleshooting guide lists every condition reason the operator can write.

#[test]
fn the_troubleshooting_table_lists_every_reason() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reasons = std::fs::read_to_string(root.join("src/plan/reasons.rs")).expect("reasons.rs");
    let guide = std::fs::read_to_string(root.join("docs/troubleshooting.md")).expect("troubleshooting.md");
    let mut count = 0;
    for line in reasons.lines().filter(|l| l.starts_with("pub const ")) {
        let value = line.split('"').nth(1).expect("a string constant");
        count += 1;
        assert!(guide.contains(&format!("| `{value}` |")), "docs/troubleshooting.md has no row for {value}");
    }
    assert!(count > 20, "only {count} reasons found");
}
