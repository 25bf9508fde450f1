//! The HTTP gateway speaking td's v1 sync API, and the `tdsync` binary. Nothing is here yet: the
//! gateway issue builds it on top of `tdsync-tenants` and `tdsync-acl`.
