//! Unix groups by name: the LMTP socket's group and the one Postfix reads its tables as.

use std::ffi::CString;
use std::io;

/// The id of the group called `name`, through the system's group database (NSS).
pub fn id(name: &str) -> io::Result<u32> {
    let not_found = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("group {name:?} does not exist"),
        )
    };
    let c_name = CString::new(name).map_err(|_| not_found())?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: `group` is plain data that getgrnam_r fills in; every pointer passed is
        // valid for the call, and `buf` is the length given.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 if found.is_null() => return Err(not_found()),
            0 => return Ok(group.gr_gid),
            rc => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_and_unknown_groups() {
        assert_eq!(super::id("root").expect("root exists"), 0);
        let err = super::id("no-such-group-here").unwrap_err();
        assert_eq!(
            err.to_string(),
            "group \"no-such-group-here\" does not exist"
        );
        assert!(super::id("nul\0byte").is_err());
    }
}
