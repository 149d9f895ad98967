/*
 * secrets.c
 *		Secrets (the S3 secret key, the gateway's JWT secret) read from files
 *		that only the database server's operating system user can read.
 *
 * A setting's value is visible to more roles than its flags suggest: while
 * the library is not loaded in a session, a value from postgresql.conf is a
 * placeholder any role reads with SHOW, and a value set with ALTER DATABASE
 * or ALTER ROLE sits in pg_db_role_setting, which every role reads.  So a
 * secret setting holds no secret: it names a file, as PostgREST's
 * "@/path/to/file" does, and only this file reads it.  A value that is not
 * "@" followed by an absolute path is refused, never used.
 *
 * Rules this file keeps:
 * - The secret never appears in a message, a log line or a return value
 *   other than the one the caller asked for.
 * - The file must be a regular file of at most EL_SECRET_MAX_SIZE bytes,
 *   owned by the server's user with no group or other access, or by root
 *   with at most read access for the group (as PostgreSQL's ssl_key_file).
 * - A secret is read again when the setting or the file changes (a new
 *   inode, size or modification time), so rotating it needs no restart.
 * - At an elevel below ERROR nothing here throws: the gateway calls it from
 *   code that must not unwind (see gateway.c).  The cache lives in malloc'd
 *   memory for the same reason, and a problem is logged once until it
 *   changes.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utils/timestamp.h"

#include "enterprise_lab.h"

/* Longest secret file accepted (an HS256 key or an S3 secret is far shorter). */
#define EL_SECRET_MAX_SIZE 4096
/* Settings that hold secrets: enterprise_lab.s3_secret_key, enterprise_lab.jwt_secret. */
#define EL_SECRET_SLOTS 2

typedef struct ElSecretSlot
{
	const char *setting;		/* the setting's name (a string constant) */
	char	   *value;			/* the setting's value the secret was read for */
	dev_t		dev;			/* identity of the file it was read from */
	ino_t		ino;
	off_t		size;
	struct timespec mtime;
	char	   *secret;			/* NUL-terminated, malloc'd */
	char		problem[256];	/* last problem reported below ERROR */
} ElSecretSlot;

static ElSecretSlot slots[EL_SECRET_SLOTS];

static ElSecretSlot *
el_secret_slot(const char *setting)
{
	for (int i = 0; i < EL_SECRET_SLOTS; i++)
	{
		if (slots[i].setting == NULL)
			slots[i].setting = setting;
		if (strcmp(slots[i].setting, setting) == 0)
			return &slots[i];
	}
	elog(ERROR, "enterprise_lab: more secret settings than EL_SECRET_SLOTS");
	return NULL;
}

static void
el_secret_forget(ElSecretSlot *slot)
{
	if (slot->secret)
	{
		explicit_bzero(slot->secret, strlen(slot->secret));
		free(slot->secret);
	}
	free(slot->value);
	slot->secret = NULL;
	slot->value = NULL;
}

/*
 * Report a problem at elevel.  Below ERROR the same problem is reported
 * once, not on every call (the gateway asks on every request).
 */
#define el_secret_problem(slot, elevel, code, key, ...) \
	do { \
		if ((elevel) >= ERROR || strcmp((slot)->problem, (key)) != 0) \
		{ \
			if ((elevel) < ERROR) \
				strlcpy((slot)->problem, (key), sizeof((slot)->problem)); \
			ereport((elevel), (errcode(code), __VA_ARGS__)); \
		} \
	} while (0)

/* File access the server's user may give a secret file it owns: none beyond its own. */
static bool
el_secret_mode_ok(const struct stat *st)
{
	if (st->st_uid == geteuid())
		return (st->st_mode & (S_IRWXG | S_IRWXO)) == 0;
	if (st->st_uid == 0)
		return (st->st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) == 0;
	return false;
}

/*
 * The secret that setting (whose current value is value) names, or NULL
 * when the setting is empty or its secret cannot be read; the problem is
 * reported at elevel (ERROR throws, as usual).  The result belongs to this
 * file and stays valid until the next call for the same setting.
 */
const char *
el_secret_get(const char *setting, const char *value, int elevel)
{
	ElSecretSlot *slot = el_secret_slot(setting);
	const char *path;
	struct stat st;
	char		buf[EL_SECRET_MAX_SIZE + 1];
	ssize_t		len;
	int			fd;

	if (value == NULL || value[0] == '\0')
	{
		el_secret_forget(slot);
		slot->problem[0] = '\0';
		return NULL;
	}
	if (value[0] != '@' || value[1] != '/')
	{
		el_secret_forget(slot);
		el_secret_problem(slot, elevel, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "inline",
						  errmsg("%s must name a file that holds the secret, not the secret itself", setting),
						  errdetail("A value set inline can be read by roles that are not superusers (with SHOW in a session that has not loaded enterprise_lab, or from pg_db_role_setting), so it is not used."),
						  errhint("Write the secret to a file only the database server's user can read (mode 0600) and set %s = '@/absolute/path/to/that/file'.", setting));
		return NULL;
	}
	path = value + 1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0)
	{
		int			save_errno = errno;

		if (fd >= 0)
			close(fd);
		el_secret_forget(slot);
		errno = save_errno;
		el_secret_problem(slot, elevel, ERRCODE_CONFIG_FILE_ERROR, value,
						  errmsg("could not open the secret file \"%s\" named by %s: %m", path, setting),
						  errhint("Create the file, owned by the database server's user with mode 0600, or correct %s.", setting));
		return NULL;
	}

	/* Unchanged setting and file: the secret read last time. */
	if (slot->secret && slot->value && strcmp(slot->value, value) == 0 &&
		slot->dev == st.st_dev && slot->ino == st.st_ino && slot->size == st.st_size &&
		slot->mtime.tv_sec == st.st_mtim.tv_sec && slot->mtime.tv_nsec == st.st_mtim.tv_nsec)
	{
		close(fd);
		return slot->secret;
	}
	el_secret_forget(slot);

	if (!S_ISREG(st.st_mode) || st.st_size > EL_SECRET_MAX_SIZE)
	{
		close(fd);
		el_secret_problem(slot, elevel, ERRCODE_CONFIG_FILE_ERROR, "not a small file",
						  errmsg("the secret file \"%s\" named by %s is not a regular file of at most %d bytes",
								 path, setting, EL_SECRET_MAX_SIZE));
		return NULL;
	}
	if (!el_secret_mode_ok(&st))
	{
		close(fd);
		el_secret_problem(slot, elevel, ERRCODE_CONFIG_FILE_ERROR, "access",
						  errmsg("the secret file \"%s\" named by %s may be read by other users", path, setting),
						  errdetail("It must be owned by the database server's user with no group or other access, or by root with at most group read access."),
						  errhint("chmod 600 the file and chown it to the database server's user."));
		return NULL;
	}

	len = read(fd, buf, sizeof(buf));
	if (len < 0)
	{
		int			save_errno = errno;

		close(fd);
		errno = save_errno;
		el_secret_problem(slot, elevel, ERRCODE_CONFIG_FILE_ERROR, "read",
						  errmsg("could not read the secret file \"%s\" named by %s: %m", path, setting));
		return NULL;
	}
	close(fd);
	/* One trailing line break (or spaces) is how editors and echo end a file. */
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
					   buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	if (len == 0 || (ssize_t) strlen(buf) != len)
	{
		explicit_bzero(buf, sizeof(buf));
		el_secret_problem(slot, elevel, ERRCODE_CONFIG_FILE_ERROR, "empty",
						  errmsg("the secret file \"%s\" named by %s is empty or holds a NUL byte", path, setting));
		return NULL;
	}

	slot->secret = strdup(buf);
	slot->value = strdup(value);
	explicit_bzero(buf, sizeof(buf));
	if (slot->secret == NULL || slot->value == NULL)
	{
		el_secret_forget(slot);
		el_secret_problem(slot, elevel, ERRCODE_OUT_OF_MEMORY, "memory",
						  errmsg("out of memory reading the secret named by %s", setting));
		return NULL;
	}
	slot->dev = st.st_dev;
	slot->ino = st.st_ino;
	slot->size = st.st_size;
	slot->mtime = st.st_mtim;
	slot->problem[0] = '\0';
	return slot->secret;
}

/*
 * SHOW hook of a secret setting: the file it names, or ******** for a value
 * that is not a file reference (refused, and not to be echoed).
 */
const char *
el_secret_show(const char *value)
{
	if (value == NULL || value[0] == '\0')
		return "";
	if (value[0] == '@' && value[1] == '/')
		return value;
	return "********";
}
