fn main() {
    println!("ocfo {}", env!("CARGO_PKG_VERSION"));
}
