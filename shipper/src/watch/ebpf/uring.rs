//! io_uring writes pass through neither `vfs_write` nor a write syscall, so the `uring_complete`
//! program watches the kernel's `io_uring:io_uring_complete` tracepoint instead. What it needs from
//! the running kernel is read here: where the tracepoint's record holds the request and its result
//! (its format file), the offsets of the request's file and opcode, and the numbers of the write
//! opcodes (BTF). On a kernel without io_uring or that tracepoint the program is not attached, and
//! the periodic safety check finds such writes, as it finds any other write no event reports.

use crate::watch::btf::Btf;
use aya::programs::TracePoint;
use aya::Ebpf;
use shipper_ebpf::offsets;
use std::path::Path;

const PROGRAM: &str = "uring_complete";
const CATEGORY: &str = "io_uring";
const TRACEPOINT: &str = "io_uring_complete";

/// The io_uring opcodes that write to the request's file.
const WRITE_OPS: [&str; 4] = [
    "IORING_OP_WRITE",
    "IORING_OP_WRITEV",
    "IORING_OP_WRITE_FIXED",
    "IORING_OP_WRITEV_FIXED",
];

/// The globals `uring_complete` reads, each with its value for this kernel; `Err` says why io_uring
/// writes cannot be hooked here.
pub(super) fn globals(btf: &Btf, tracefs: &str) -> Result<Vec<(&'static str, u64)>, String> {
    let format_path = Path::new(tracefs)
        .join("events")
        .join(CATEGORY)
        .join(TRACEPOINT)
        .join("format");
    let format = std::fs::read_to_string(&format_path).map_err(|e| format!("{}: {e}", format_path.display()))?;
    let record =
        |name: &str| field_offset(&format, name).ok_or_else(|| format!("{}: no field `{name}`", format_path.display()));
    let mut ops = 0u64;
    for name in WRITE_OPS {
        // The newer opcodes are missing on older kernels; IORING_OP_WRITE is there since 5.6.
        match btf.enum_value("io_uring_op", name) {
            Ok(n @ 0..=63) => ops |= 1 << n,
            Ok(_) => {}
            Err(e) if name == WRITE_OPS[0] => return Err(e),
            Err(_) => {}
        }
    }
    Ok(vec![
        (offsets::TP_URING_REQ, record("req")?),
        (offsets::TP_URING_RES, record("res")?),
        (offsets::KIOCB_FILE, btf.offset("io_kiocb", "file")?),
        (offsets::KIOCB_OPCODE, btf.offset("io_kiocb", "opcode")?),
        (offsets::URING_WRITE_OPS, ops),
    ])
}

/// The same globals, all zero: `uring_complete` is loaded with them but never attached.
pub(super) fn unused() -> Vec<(&'static str, u64)> {
    [
        offsets::TP_URING_REQ,
        offsets::TP_URING_RES,
        offsets::KIOCB_FILE,
        offsets::KIOCB_OPCODE,
        offsets::URING_WRITE_OPS,
    ]
    .into_iter()
    .map(|name| (name, 0))
    .collect()
}

/// Attaches `uring_complete` to `io_uring:io_uring_complete`.
pub(super) fn attach(bpf: &mut Ebpf) -> Result<(), String> {
    let program: &mut TracePoint = bpf
        .program_mut(PROGRAM)
        .ok_or_else(|| format!("BPF program {PROGRAM} missing from the object"))?
        .try_into()
        .map_err(|e| format!("BPF program {PROGRAM}: {e}"))?;
    program
        .load()
        .map_err(|e| format!("the kernel refused BPF program {PROGRAM}: {e}"))?;
    program
        .attach(CATEGORY, TRACEPOINT)
        .map(|_| ())
        .map_err(|e| format!("attaching {PROGRAM} to {CATEGORY}/{TRACEPOINT}: {e}"))
}

/// The byte offset of field `name` in a tracepoint record, from its format file (lines such as
/// `field:void * req;` then `offset:16;`, `size:8;`, `signed:0;`, separated by tabs).
fn field_offset(format: &str, name: &str) -> Option<u64> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';');
        let declaration = parts.next()?.trim().strip_prefix("field:")?;
        let declared = declaration.rsplit([' ', '*']).next()?;
        let declared = declared.split('[').next()?;
        if declared != name {
            return None;
        }
        parts.find_map(|p| p.trim().strip_prefix("offset:")?.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = "name: io_uring_complete\nID: 2141\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
        \tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;\n\
        \tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;\n\
        \tfield:u64 user_data;\toffset:24;\tsize:8;\tsigned:0;\n\
        \tfield:int res;\toffset:32;\tsize:4;\tsigned:1;\n\
        \tfield:char comm[16];\toffset:40;\tsize:16;\tsigned:0;\n\n\
        print fmt: \"ring %p, req %p, result %d\", REC->ctx, REC->req, REC->res\n";

    #[test]
    fn record_fields_are_found_by_name_in_the_format() {
        assert_eq!(field_offset(FORMAT, "req"), Some(16));
        assert_eq!(field_offset(FORMAT, "res"), Some(32));
        assert_eq!(field_offset(FORMAT, "comm"), Some(40));
        assert_eq!(field_offset(FORMAT, "common_type"), Some(0));
        // Neither a field that is not there nor one whose name only ends the same.
        assert_eq!(field_offset(FORMAT, "cflags"), None);
        assert_eq!(field_offset(FORMAT, "data"), None);
    }

    #[test]
    fn this_kernel_says_where_io_uring_writes_can_be_seen() {
        let found = super::super::load::ensure_tracefs()
            .and_then(|tracefs| Btf::kernel().and_then(|btf| globals(&btf, tracefs)));
        let values = match found {
            Ok(v) => v,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipping: {e}");
                return;
            }
            Err(e) => panic!("CI runs on a kernel with io_uring, its tracepoint and BTF: {e}"),
        };
        let ops = values.iter().find(|(n, _)| *n == offsets::URING_WRITE_OPS).unwrap().1;
        // IORING_OP_WRITEV and IORING_OP_WRITE are numbered by the kernel's ABI.
        assert_eq!(ops & (1 << 2 | 1 << 23), 1 << 2 | 1 << 23, "{ops:#x}");
        // Reads (IORING_OP_READV, IORING_OP_READ) are not writes.
        assert_eq!(ops & (1 << 1 | 1 << 22), 0, "{ops:#x}");
    }
}
