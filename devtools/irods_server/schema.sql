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

-- specific queries (api_specific_query.py), seeded on a fresh install (r_objt_seq still
-- empty) with the built-ins of iRODS's icatSysInserts.sql
CREATE TABLE IF NOT EXISTS r_specific_query (
    alias     TEXT,
    sqlstr    TEXT NOT NULL,
    create_ts TEXT NOT NULL
);
INSERT INTO r_specific_query (alias, sqlstr, create_ts)
    SELECT 'ls', 'select alias, sqlStr from R_SPECIFIC_QUERY', '01292940000'
    WHERE NOT EXISTS (SELECT 1 FROM r_objt_seq);
INSERT INTO r_specific_query (alias, sqlstr, create_ts)
    SELECT 'lsl', 'select alias, sqlStr from R_SPECIFIC_QUERY where sqlStr like ?', '01292940000'
    WHERE NOT EXISTS (SELECT 1 FROM r_objt_seq);
INSERT INTO r_specific_query (alias, sqlstr, create_ts)
    SELECT 'ShowCollAcls', 'select distinct R_USER_MAIN.user_name, R_USER_MAIN.zone_name,'
        || ' R_TOKN_MAIN.token_name, R_USER_MAIN.user_type_name from R_USER_MAIN, R_TOKN_MAIN,'
        || ' R_OBJT_ACCESS, R_COLL_MAIN where R_OBJT_ACCESS.object_id = R_COLL_MAIN.coll_id'
        || ' AND R_COLL_MAIN.coll_name = ? AND R_TOKN_MAIN.token_namespace = ''access_type'''
        || ' AND R_USER_MAIN.user_id = R_OBJT_ACCESS.user_id'
        || ' AND R_OBJT_ACCESS.access_type_id = R_TOKN_MAIN.token_id', '01342019000'
    WHERE NOT EXISTS (SELECT 1 FROM r_objt_seq);
-- and those of iRODS's database_upgrade.py (schema version 2) that a 4.3 install has
INSERT INTO r_specific_query (alias, sqlstr, create_ts)
    SELECT 'listQueryByAliasLike', 'SELECT alias, sqlStr FROM R_SPECIFIC_QUERY WHERE alias LIKE ?',
        '1388534400'
    WHERE NOT EXISTS (SELECT 1 FROM r_objt_seq);
INSERT INTO r_specific_query (alias, sqlstr, create_ts)
    SELECT 'findQueryByAlias', 'SELECT alias, sqlStr FROM R_SPECIFIC_QUERY WHERE alias = ?',
        '1388534400'
    WHERE NOT EXISTS (SELECT 1 FROM r_objt_seq);
INSERT INTO r_specific_query (alias, sqlstr, create_ts)
    SELECT 'ilsLACollections', 'SELECT c.parent_coll_name, c.coll_name, c.create_ts,'
        || ' c.modify_ts, c.coll_id, c.coll_owner_name, c.coll_owner_zone, c.coll_type,'
        || ' u.user_name, u.zone_name, a.access_type_id, u.user_id FROM R_COLL_MAIN c'
        || ' JOIN R_OBJT_ACCESS a ON c.coll_id = a.object_id JOIN R_USER_MAIN u'
        || ' ON a.user_id = u.user_id WHERE c.parent_coll_name = ? ORDER BY c.coll_name,'
        || ' u.user_name, a.access_type_id DESC LIMIT ? OFFSET ?', '1388534400'
    WHERE NOT EXISTS (SELECT 1 FROM r_objt_seq);
INSERT INTO r_specific_query (alias, sqlstr, create_ts)
    SELECT 'ilsLADataObjects', 'SELECT s.coll_name, s.data_name, s.create_ts, s.modify_ts,'
        || ' s.data_id, s.data_size, s.data_repl_num, s.data_owner_name, s.data_owner_zone,'
        || ' u.user_name, u.user_id, a.access_type_id, u.user_type_name, u.zone_name FROM'
        || ' ( SELECT c.coll_name, d.data_name, d.create_ts, d.modify_ts, d.data_id,'
        || ' d.data_repl_num, d.data_size, d.data_owner_name, d.data_owner_zone FROM'
        || ' R_COLL_MAIN c JOIN R_DATA_MAIN d ON c.coll_id = d.coll_id WHERE c.coll_name = ?'
        || ' ORDER BY d.data_name) s JOIN R_OBJT_ACCESS a ON s.data_id = a.object_id'
        || ' JOIN R_USER_MAIN u ON a.user_id = u.user_id ORDER BY s.coll_name, s.data_name,'
        || ' u.user_name, a.access_type_id DESC LIMIT ? OFFSET ?', '1388534400'
    WHERE NOT EXISTS (SELECT 1 FROM r_objt_seq);

-- user DNs (iadmin aua/rua: modify user addAuth/rmAuth), as iRODS's R_USER_AUTH
CREATE TABLE IF NOT EXISTS r_user_auth (
    user_id        INTEGER NOT NULL,
    user_auth_name TEXT NOT NULL,
    create_ts      TEXT NOT NULL,
    UNIQUE (user_id, user_auth_name)
);

-- quotas (quotas.py), as iRODS's R_QUOTA_MAIN / R_QUOTA_USAGE; resc_id 0: the total
CREATE TABLE IF NOT EXISTS r_quota_main (
    user_id     INTEGER NOT NULL,
    resc_id     INTEGER NOT NULL,
    quota_limit INTEGER NOT NULL,
    quota_over  INTEGER NOT NULL DEFAULT 0,
    modify_ts   TEXT NOT NULL,
    UNIQUE (user_id, resc_id)
);
CREATE TABLE IF NOT EXISTS r_quota_usage (
    user_id     INTEGER NOT NULL,
    resc_id     INTEGER NOT NULL,
    quota_usage INTEGER NOT NULL,
    modify_ts   TEXT NOT NULL
);
