//! Loading: the kernel struct offsets the programs need, from the kernel's BTF; tracefs; and which
//! program goes on which tracepoint.

use super::PROGRAMS;
use crate::config::EbpfWriteHook;
use crate::watch::btf::Btf;
use aya::programs::{FExit, TracePoint};
use aya::{Ebpf, EbpfLoader};
use shipper_ebpf::offsets;

/// Which program goes on which `syscalls/` tracepoints. Entry programs note what the syscall is about
/// to do; exit programs report it once it has. Tracepoints of syscalls this architecture lacks (the
/// pre-`*at` ones on arm64) are skipped; the `*at` ones cover those machines.
const ATTACH: &[(&str, &[&str])] = &[
    ("creat_enter", &["sys_enter_creat"]),
    ("open_enter", &["sys_enter_open"]),
    ("openat_enter", &["sys_enter_openat"]),
    ("openat2_enter", &["sys_enter_openat2"]),
    ("mkdir_enter", &["sys_enter_mkdir", "sys_enter_rmdir"]),
    ("mkdirat_enter", &["sys_enter_mkdirat"]),
    ("unlink_enter", &["sys_enter_unlink"]),
    ("unlinkat_enter", &["sys_enter_unlinkat"]),
    ("rename_enter", &["sys_enter_rename"]),
    ("renameat_enter", &["sys_enter_renameat", "sys_enter_renameat2"]),
    ("link_enter", &["sys_enter_link", "sys_enter_symlink"]),
    ("linkat_enter", &["sys_enter_linkat"]),
    ("symlinkat_enter", &["sys_enter_symlinkat"]),
    (
        "dir_exit",
        &[
            "sys_exit_creat",
            "sys_exit_open",
            "sys_exit_openat",
            "sys_exit_openat2",
            "sys_exit_mkdir",
            "sys_exit_rmdir",
            "sys_exit_mkdirat",
            "sys_exit_unlink",
            "sys_exit_unlinkat",
            "sys_exit_rename",
            "sys_exit_renameat",
            "sys_exit_renameat2",
            "sys_exit_link",
            "sys_exit_symlink",
            "sys_exit_linkat",
            "sys_exit_symlinkat",
        ],
    ),
];

/// The write programs on syscall tracepoints (entry notes the fd, exit reports the file).
const WRITE_TRACEPOINTS: &[(&str, &[&str])] = &[
    (
        "write_enter",
        &[
            "sys_enter_write",
            "sys_enter_writev",
            "sys_enter_pwrite64",
            "sys_enter_pwritev",
            "sys_enter_pwritev2",
        ],
    ),
    (
        "write_exit",
        &[
            "sys_exit_write",
            "sys_exit_writev",
            "sys_exit_pwrite64",
            "sys_exit_pwritev",
            "sys_exit_pwritev2",
        ],
    ),
];

/// `writev`, `pwritev` and `pwritev2` alone, for when fexit covers `vfs_write` but the kernel has no
/// `vfs_writev` to hook.
const WRITEV_TRACEPOINTS: &[(&str, &[&str])] = &[
    (
        "write_enter",
        &["sys_enter_writev", "sys_enter_pwritev", "sys_enter_pwritev2"],
    ),
    (
        "write_exit",
        &["sys_exit_writev", "sys_exit_pwritev", "sys_exit_pwritev2"],
    ),
];

/// The syscalls that write from one fd to another without `vfs_write`: hooked with either hook.
const COPY_TRACEPOINTS: &[(&str, &[&str])] = &[
    ("write_enter", &["sys_enter_sendfile64"]),
    ("copy_enter", &["sys_enter_copy_file_range", "sys_enter_splice"]),
    (
        "write_exit",
        &["sys_exit_sendfile64", "sys_exit_copy_file_range", "sys_exit_splice"],
    ),
];

/// The fexit write programs and the kernel functions they go on.
const FEXIT: [(&str, &str); 2] = [("write_fexit", "vfs_write"), ("writev_fexit", "vfs_writev")];

/// Where writes are hooked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteHook {
    /// fexit on `vfs_write` and `vfs_writev`: one program per write, the file as an argument.
    Fexit,
    /// `sys_enter_*` and `sys_exit_*` of write, writev and pwrite64.
    Tracepoint,
}

impl WriteHook {
    pub(super) fn name(self) -> &'static str {
        match self {
            WriteHook::Fexit => "fexit",
            WriteHook::Tracepoint => "tracepoint",
        }
    }

    /// The hooks to try for `tail.ebpf_write_hook`, best first.
    fn ranked(choice: EbpfWriteHook) -> &'static [WriteHook] {
        match choice {
            EbpfWriteHook::Auto => &[WriteHook::Fexit, WriteHook::Tracepoint],
            EbpfWriteHook::Fexit => &[WriteHook::Fexit],
            EbpfWriteHook::Tracepoint => &[WriteHook::Tracepoint],
        }
    }
}

/// Tracepoints every supported architecture has: failing to attach one of these is an error.
const REQUIRED: &[&str] = &[
    "sys_enter_write",
    "sys_exit_write",
    "sys_enter_openat",
    "sys_exit_openat",
    "sys_enter_unlinkat",
    "sys_exit_unlinkat",
    "sys_enter_renameat2",
    "sys_exit_renameat2",
    "sys_enter_mkdirat",
    "sys_exit_mkdirat",
];

/// Computes the offsets, loads the programs and attaches them: the directory programs, then the
/// first write hook of `choice`'s ranking that attaches and passes the probe. Returns the hook used
/// and why better ones were not.
pub(super) fn load(choice: EbpfWriteHook) -> Result<(Ebpf, WriteHook, Vec<String>), String> {
    let tracefs = ensure_tracefs()?;
    // Offsets first, and the parsed BTF dropped before aya parses it again for the loader.
    let (values, uring) = {
        let btf = Btf::kernel()?;
        let field = |ty: &str, field: &str| btf.offset(ty, field);
        let path_dentry = field("path", "dentry")?;
        let uring = super::uring::globals(&btf, tracefs);
        let mut values = vec![
            (offsets::TASK_FILES, field("task_struct", "files")?),
            (offsets::FILES_FDT, field("files_struct", "fdt")?),
            (offsets::FDT_MAX_FDS, field("fdtable", "max_fds")?),
            (offsets::FDT_FD, field("fdtable", "fd")?),
            (offsets::FILE_INODE, field("file", "f_inode")?),
            (offsets::INODE_INO, field("inode", "i_ino")?),
            (offsets::INODE_SB, field("inode", "i_sb")?),
            (offsets::SB_DEV, field("super_block", "s_dev")?),
            (offsets::TASK_FS, field("task_struct", "fs")?),
            (offsets::FS_PWD_DENTRY, field("fs_struct", "pwd")? + path_dentry),
            (offsets::FILE_DENTRY, field("file", "f_path")? + path_dentry),
            (offsets::DENTRY_INODE, field("dentry", "d_inode")?),
        ];
        values.extend(uring.clone().unwrap_or_else(|_| super::uring::unused()));
        (values, uring.map(|_| ()))
    };
    // aya's loader parses the kernel's BTF when made; that parse is dropped for one of ours, which the
    // fexit programs use too (one parse alive at a time keeps the agent's peak memory down).
    super::release_freed_memory();
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    super::release_freed_memory();
    let kernel_btf = aya::Btf::from_sys_fs().map_err(|e| format!("reading the kernel's BTF: {e}"))?;
    loader.btf(Some(&kernel_btf));
    for (global, value) in &values {
        loader.override_global(global, value, true);
    }
    let mut bpf = loader
        .load(PROGRAMS)
        .map_err(|e| format!("loading the BPF programs failed: {e} (needs CAP_BPF and CAP_PERFMON, or root)"))?;
    attach_tracepoints(&mut bpf, tracefs, ATTACH)?;
    attach_tracepoints(&mut bpf, tracefs, COPY_TRACEPOINTS)?;
    match uring.and_then(|()| super::uring::attach(&mut bpf)) {
        Ok(()) => tracing::debug!("io_uring writes are hooked on io_uring/io_uring_complete"),
        Err(e) => tracing::info!(
            reason = %e,
            "io_uring writes to tailed files are not seen through eBPF on this kernel; the periodic safety check reads them"
        ),
    }
    let mut refused = Vec::new();
    for &hook in WriteHook::ranked(choice) {
        let attached = match hook {
            WriteHook::Fexit => attach_fexit(&mut bpf, &kernel_btf, tracefs),
            WriteHook::Tracepoint => attach_tracepoints(&mut bpf, tracefs, WRITE_TRACEPOINTS),
        };
        match attached.and_then(|()| super::probe::write_reported(&mut bpf)) {
            Ok(()) => return Ok((bpf, hook, refused)),
            Err(e) => {
                refused.push(format!("{}: {e}", hook.name()));
                if hook == WriteHook::Fexit {
                    unload_fexit(&mut bpf);
                }
            }
        }
    }
    let hint = match choice {
        EbpfWriteHook::Auto => "",
        _ => "; tail.ebpf_write_hook allows only this hook: set it to auto to use the next that works",
    };
    Err(format!("no hook for writes works here ({}){hint}", refused.join("; ")))
}

/// fexit on `vfs_write` (required) and `vfs_writev` (else writev's tracepoints).
fn attach_fexit(bpf: &mut Ebpf, btf: &aya::Btf, tracefs: &str) -> Result<(), String> {
    for (i, (name, function)) in FEXIT.iter().enumerate() {
        let program: &mut FExit = bpf
            .program_mut(name)
            .ok_or_else(|| format!("BPF program {name} missing from the object"))?
            .try_into()
            .map_err(|e| format!("BPF program {name}: {e}"))?;
        let attached = program
            .load(function, btf)
            .map_err(|e| format!("the kernel refused {name} on {function}: {e}"))
            .and_then(|()| {
                program
                    .attach()
                    .map(|_| ())
                    .map_err(|e| format!("attaching {name} to {function}: {e}"))
            });
        match attached {
            Ok(()) => {}
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "no fexit on {function}; writev is hooked on its tracepoints");
                attach_tracepoints(bpf, tracefs, WRITEV_TRACEPOINTS)?;
            }
        }
    }
    Ok(())
}

/// Takes the fexit programs off again (their probe failed).
fn unload_fexit(bpf: &mut Ebpf) {
    for (name, _) in FEXIT {
        if let Some(program) = bpf.program_mut(name) {
            if let Ok(p) = <&mut FExit>::try_from(program) {
                let _ = p.unload();
            }
        }
    }
}

/// Loads each program of `table` (once) and attaches it to its `syscalls/` tracepoints.
fn attach_tracepoints(bpf: &mut Ebpf, tracefs: &str, table: &[(&str, &[&str])]) -> Result<(), String> {
    for (name, points) in table {
        let program: &mut TracePoint = bpf
            .program_mut(name)
            .ok_or_else(|| format!("BPF program {name} missing from the object"))?
            .try_into()
            .map_err(|e| format!("BPF program {name}: {e}"))?;
        if program.fd().is_err() {
            program
                .load()
                .map_err(|e| format!("the kernel refused BPF program {name}: {e}"))?;
        }
        for point in *points {
            let exists = std::path::Path::new(tracefs)
                .join("events/syscalls")
                .join(point)
                .is_dir();
            if !exists && !REQUIRED.contains(point) {
                tracing::debug!(tracepoint = point, "no such syscall here; not attached");
                continue;
            }
            program
                .attach("syscalls", point)
                .map_err(|e| format!("attaching {name} to syscalls/{point}: {e}"))?;
        }
    }
    Ok(())
}

/// Where tracefs is looked for (aya attaches tracepoints through it).
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Tracepoints are attached through tracefs, which a fresh host or a container may not have mounted:
/// mount it at its usual place when neither place has it. Returns where it is.
pub(super) fn ensure_tracefs() -> Result<&'static str, String> {
    let mounted = |dir: &str| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if let Some(dir) = TRACEFS.iter().find(|dir| mounted(dir)) {
        return Ok(dir);
    }
    let (source, target, fstype) = (c"nodev", c"/sys/kernel/tracing", c"tracefs");
    // SAFETY: mount(2) with NUL-terminated constant strings and no data argument; it changes no memory
    // of ours.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 || !mounted(TRACEFS[0]) {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({e}); mount it \
             (`mount -t tracefs nodev /sys/kernel/tracing`) or mount the host's /sys/kernel/tracing into the container"
        ));
    }
    tracing::info!("mounted tracefs at /sys/kernel/tracing (the BPF programs attach to tracepoints through it)");
    Ok(TRACEFS[0])
}
