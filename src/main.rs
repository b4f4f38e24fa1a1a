//! portcullis binary entry point.
fn main() {}
