//! overcast end to end, as one test binary (one link of the AWS SDK and the server): the
//! HTTP API against moto and QEMU, the `overcast serve` process, and the CLI. The harness
//! is `overcast-test-utils`; each module was once a test binary of its own.

mod aws;
mod aws_buckets;
mod aws_bulk;
mod aws_containers;
mod aws_faults;
mod aws_objects;
mod aws_process;
mod aws_secrets;
mod aws_transfer;
mod cli;
mod compat;
mod compat_ecs;
mod config;
mod console;
mod ec2;
mod ec2_clients;
mod fuzz;
mod inventory;
mod local;
mod local_vms;
mod proxmox;
mod registry;
mod servers;

/// The binary under test, for the process helpers of `overcast_test_utils::process`.
const BIN: &str = env!("CARGO_BIN_EXE_overcast");
