//! Looking up system users and groups by name.

use nix::unistd::{Gid, Group, Uid, User};

/// A resolved user: ids, primary group and supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: std::path::PathBuf,
}

/// Finds a user by name (or numeric uid), with its supplementary groups.
pub fn lookup_user(name: &str) -> Result<Account, String> {
    let user = if let Ok(uid) = name.parse::<u32>() {
        User::from_uid(Uid::from_raw(uid))
    } else {
        User::from_name(name)
    }
    .map_err(|e| format!("cannot look up user `{name}`: {e}"))?
    .ok_or_else(|| format!("there is no user `{name}` on this host"))?;
    let cname =
        std::ffi::CString::new(user.name.clone()).map_err(|_| format!("bad user name `{name}`"))?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid)
        .map(|g| g.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_else(|_| vec![user.gid.as_raw()]);
    Ok(Account {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
        home: user.dir,
    })
}

/// Finds a group's id by name (or numeric gid).
pub fn lookup_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    Group::from_name(name)
        .map_err(|e| format!("cannot look up group `{name}`: {e}"))?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| format!("there is no group `{name}` on this host"))
}

/// The name of a user id, or the number when it has none.
pub fn user_name(uid: u32) -> String {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// The name of a group id, or the number when it has none.
pub fn group_name(gid: u32) -> String {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string())
}
