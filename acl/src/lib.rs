//! Tenants' identities, scoped tokens and the control-plane store. Nothing is here yet: the ACL
//! issue builds it. It will not depend on `tdsync-tenants` (nor the other way round).
