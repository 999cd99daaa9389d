//! shipper's BPF programs. Built for `bpfel-unknown-none` by shipper's build script (aya-build); on the
//! host this binary is empty.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
