-- The test server's catalog: a small mirror of the iRODS ICAT tables (names and columns
-- follow iRODS's r_* tables so GenQuery maps onto them the way the real server does).
-- Every object id (user, group, resource, collection, data object, AVU) comes from the one
-- sequence in r_objt_seq, as in iRODS, so r_objt_metamap/r_objt_access can key on it.
-- Times are 11-digit zero-padded epoch seconds as TEXT, as iRODS stores them.

CREATE TABLE IF NOT EXISTS r_objt_seq (next_id INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS r_zone_main (
    zone_id        INTEGER PRIMARY KEY,
    zone_name      TEXT NOT NULL UNIQUE,
    zone_type_name TEXT NOT NULL DEFAULT 'local',
    zone_conn_string TEXT NOT NULL DEFAULT '',
    r_comment      TEXT NOT NULL DEFAULT '',
    create_ts      TEXT NOT NULL,
    modify_ts      TEXT NOT NULL
);

-- users AND groups (user_type_name 'rodsgroup'), as in iRODS
CREATE TABLE IF NOT EXISTS r_user_main (
    user_id        INTEGER PRIMARY KEY,
    user_name      TEXT NOT NULL,
    user_type_name TEXT NOT NULL,          -- rodsadmin | rodsuser | groupadmin | rodsgroup
    zone_name      TEXT NOT NULL,
    user_info      TEXT NOT NULL DEFAULT '',
    r_comment      TEXT NOT NULL DEFAULT '',
    create_ts      TEXT NOT NULL,
    modify_ts      TEXT NOT NULL,
    UNIQUE (user_name, zone_name)
);

-- plaintext here on purpose: native auth needs md5(challenge + password); test server only
CREATE TABLE IF NOT EXISTS r_user_password (
    user_id        INTEGER NOT NULL REFERENCES r_user_main(user_id) ON DELETE CASCADE,
    rcat_password  TEXT NOT NULL,
    pass_expiry_ts TEXT NOT NULL DEFAULT '9999-12-31',
    create_ts      TEXT NOT NULL,
    modify_ts      TEXT NOT NULL
);

-- group membership; every user is also a member of its own "personal group" (user_id, user_id)
CREATE TABLE IF NOT EXISTS r_user_group (
    group_user_id  INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    create_ts      TEXT NOT NULL,
    modify_ts      TEXT NOT NULL,
    PRIMARY KEY (group_user_id, user_id)
);

CREATE TABLE IF NOT EXISTS r_resc_main (
    resc_id        INTEGER PRIMARY KEY,
    resc_name      TEXT NOT NULL UNIQUE,
    zone_name      TEXT NOT NULL,
    resc_type_name TEXT NOT NULL,          -- unixfilesystem | passthru | random | replication ...
    resc_class_name TEXT NOT NULL DEFAULT 'cache',
    resc_net       TEXT NOT NULL DEFAULT 'localhost',
    resc_def_path  TEXT NOT NULL DEFAULT '',   -- vault path (leaf resources)
    free_space     TEXT NOT NULL DEFAULT '',
    free_space_ts  TEXT NOT NULL DEFAULT '',
    resc_info      TEXT NOT NULL DEFAULT '',
    r_comment      TEXT NOT NULL DEFAULT '',
    resc_status    TEXT NOT NULL DEFAULT '',
    resc_children  TEXT NOT NULL DEFAULT '',
    resc_context   TEXT NOT NULL DEFAULT '',
    resc_parent    TEXT NOT NULL DEFAULT '',   -- parent's resc_id as text, '' for a root
    resc_parent_context TEXT NOT NULL DEFAULT '',
    create_ts      TEXT NOT NULL,
    modify_ts      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS r_coll_main (
    coll_id          INTEGER PRIMARY KEY,
    parent_coll_name TEXT NOT NULL,
    coll_name        TEXT NOT NULL UNIQUE,
    coll_owner_name  TEXT NOT NULL,
    coll_owner_zone  TEXT NOT NULL,
    coll_map_id      INTEGER NOT NULL DEFAULT 0,
    coll_inheritance TEXT NOT NULL DEFAULT '',  -- '1' when ACL inheritance is on
    coll_type        TEXT NOT NULL DEFAULT '',
    coll_info1       TEXT NOT NULL DEFAULT '',
    coll_info2       TEXT NOT NULL DEFAULT '',
    coll_expiry_ts   TEXT NOT NULL DEFAULT '',
    r_comment        TEXT NOT NULL DEFAULT '',
    create_ts        TEXT NOT NULL,
    modify_ts        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_coll_parent ON r_coll_main(parent_coll_name);

-- one row per replica; data_id shared by the replicas of one object
CREATE TABLE IF NOT EXISTS r_data_main (
    data_id         INTEGER NOT NULL,
    coll_id         INTEGER NOT NULL,
    data_name       TEXT NOT NULL,
    data_repl_num   INTEGER NOT NULL,
    data_version    TEXT NOT NULL DEFAULT '',
    data_type_name  TEXT NOT NULL DEFAULT 'generic',
    data_size       INTEGER NOT NULL DEFAULT 0,
    data_path       TEXT NOT NULL,               -- physical path
    data_owner_name TEXT NOT NULL,
    data_owner_zone TEXT NOT NULL,
    data_is_dirty   INTEGER NOT NULL DEFAULT 1,  -- replica status: 0 stale, 1 good, 2 intermediate, 3 write-locked
    data_status     TEXT NOT NULL DEFAULT '',
    data_checksum   TEXT NOT NULL DEFAULT '',
    data_expiry_ts  TEXT NOT NULL DEFAULT '',
    data_map_id     INTEGER NOT NULL DEFAULT 0,
    data_mode       TEXT NOT NULL DEFAULT '',
    r_comment       TEXT NOT NULL DEFAULT '',
    create_ts       TEXT NOT NULL,
    modify_ts       TEXT NOT NULL,
    resc_id         INTEGER NOT NULL,            -- the leaf resource holding this replica
    PRIMARY KEY (data_id, data_repl_num)
);
CREATE INDEX IF NOT EXISTS idx_data_coll_name ON r_data_main(coll_id, data_name);

CREATE TABLE IF NOT EXISTS r_meta_main (
    meta_id         INTEGER PRIMARY KEY,
    meta_namespace  TEXT NOT NULL DEFAULT '',
    meta_attr_name  TEXT NOT NULL,
    meta_attr_value TEXT NOT NULL,
    meta_attr_unit  TEXT NOT NULL DEFAULT '',
    r_comment       TEXT NOT NULL DEFAULT '',
    create_ts       TEXT NOT NULL,
    modify_ts       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_meta_triplet ON r_meta_main(meta_attr_name, meta_attr_value, meta_attr_unit);

-- object_id: a data_id, coll_id, resc_id or user_id
CREATE TABLE IF NOT EXISTS r_objt_metamap (
    object_id INTEGER NOT NULL,
    meta_id   INTEGER NOT NULL,
    create_ts TEXT NOT NULL,
    modify_ts TEXT NOT NULL,
    PRIMARY KEY (object_id, meta_id)
);
CREATE INDEX IF NOT EXISTS idx_metamap_meta ON r_objt_metamap(meta_id);

-- access_type_id: 1050 read_object, 1120 modify_object, 1200 own (see r_tokn_main)
CREATE TABLE IF NOT EXISTS r_objt_access (
    object_id      INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    access_type_id INTEGER NOT NULL,
    create_ts      TEXT NOT NULL,
    modify_ts      TEXT NOT NULL,
    PRIMARY KEY (object_id, user_id)
);

CREATE TABLE IF NOT EXISTS r_tokn_main (
    token_namespace TEXT NOT NULL,
    token_id        INTEGER NOT NULL,
    token_name      TEXT NOT NULL,
    PRIMARY KEY (token_namespace, token_id)
);

-- tickets (tickets.py), as iRODS's icatSysTables.sql.pp.in: a new ticket may write 10 files
CREATE TABLE IF NOT EXISTS r_ticket_main (
    ticket_id        INTEGER PRIMARY KEY,
    ticket_string    TEXT NOT NULL UNIQUE,
    ticket_type      TEXT NOT NULL,         -- read | write
    user_id          INTEGER NOT NULL,      -- the owner
    object_id        INTEGER NOT NULL,
    object_type      TEXT NOT NULL,         -- data | collection
    uses_limit       INTEGER NOT NULL DEFAULT 0,
    uses_count       INTEGER NOT NULL DEFAULT 0,
    write_file_limit INTEGER NOT NULL DEFAULT 10,
    write_file_count INTEGER NOT NULL DEFAULT 0,
    write_byte_limit INTEGER NOT NULL DEFAULT 0,
    write_byte_count INTEGER NOT NULL DEFAULT 0,
    ticket_expiry_ts TEXT NOT NULL DEFAULT '',
    restrictions     TEXT NOT NULL DEFAULT '',
    create_ts        TEXT NOT NULL,
    modify_ts        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS r_ticket_allowed_hosts (
    ticket_id INTEGER NOT NULL, host TEXT NOT NULL, UNIQUE (ticket_id, host)
);
CREATE TABLE IF NOT EXISTS r_ticket_allowed_users (
    ticket_id INTEGER NOT NULL, user_name TEXT NOT NULL, UNIQUE (ticket_id, user_name)
);
CREATE TABLE IF NOT EXISTS r_ticket_allowed_groups (
    ticket_id INTEGER NOT NULL, group_name TEXT NOT NULL, UNIQUE (ticket_id, group_name)
);
