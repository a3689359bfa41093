//! `cargo run -p nadc-faultfs --example mount -- DISK MNT`: mounts DISK at
//! MNT for trying a program on it by hand. A line `cut` on standard input
//! cuts the power; the end of input unmounts.

use std::io::BufRead;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [disk, mnt] = args.as_slice() else {
        eprintln!("usage: mount DISK MNT");
        std::process::exit(2);
    };
    let fs = nadc_faultfs::FaultFs::mount(disk.as_ref(), mnt.as_ref())?;
    println!("mounted {disk} at {mnt}; `cut` cuts the power, end of input unmounts");
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "cut" {
            println!("lost: {:?}", fs.cut_power()?);
        }
    }
    fs.unmount()
}
