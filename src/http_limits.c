/*
 * http_limits.c
 *		What one client may cost the gateway: a total deadline for a
 *		request's headers and body, and a share of the request-body memory
 *		all gateway processes hold together.
 *
 * libmicrohttpd's own connection timeout is an idle timeout: a client that
 * sends one byte every few seconds never reaches it.  So every connection
 * is tracked from the moment it is accepted (and again after each response
 * on a kept-alive connection), and one that has not delivered its whole
 * request by enterprise_lab.http_read_timeout is shut down; libmicrohttpd
 * then sees the end of the stream and closes it.  The table is fixed-size
 * (one entry per connection libmicrohttpd may hold) and the callbacks that
 * fill it neither allocate nor raise errors, since they run inside
 * libmicrohttpd.
 *
 * Bodies are counted in shared memory (ElShared.http_body_bytes) before
 * they are buffered; a request that would push the total over
 * enterprise_lab.http_max_buffered is refused with 503.
 */
#include "postgres.h"

#include <sys/socket.h>

#include "port/atomics.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"
#include "gateway.h"

typedef struct ElTrackedConnection
{
	bool		used;
	bool		receiving;		/* its request is not wholly in yet */
	int			fd;
	TimestampTz deadline;
} ElTrackedConnection;

static ElTrackedConnection tracked[EL_HTTP_MAX_CONNECTIONS];

/* What this process has counted in http_body_bytes, given back at exit. */
static uint64 process_reserved = 0;

static TimestampTz
el_read_deadline(void)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), el_http_read_timeout_ms);
}

/* MHD_OPTION_NOTIFY_CONNECTION: a connection was accepted or closed. */
void
el_connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
					 enum MHD_ConnectionNotificationCode toe)
{
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
	{
		const union MHD_ConnectionInfo *info =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

		*socket_context = NULL;
		for (int i = 0; i < EL_HTTP_MAX_CONNECTIONS; i++)
		{
			if (!tracked[i].used)
			{
				tracked[i].used = true;
				tracked[i].receiving = true;
				tracked[i].fd = info ? info->connect_fd : -1;
				tracked[i].deadline = el_read_deadline();
				*socket_context = &tracked[i];
				break;
			}
		}
	}
	else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL)
	{
		((ElTrackedConnection *) *socket_context)->used = false;
		*socket_context = NULL;
	}
}

static ElTrackedConnection *
el_tracked(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info ? (ElTrackedConnection *) info->socket_context : NULL;
}

/* The whole request is in: its deadline no longer applies. */
void
el_request_received(struct MHD_Connection *conn)
{
	ElTrackedConnection *t = el_tracked(conn);

	if (t)
		t->receiving = false;
}

/* A response went out; a kept-alive connection has a new deadline for its next request. */
void
el_response_sent(struct MHD_Connection *conn)
{
	ElTrackedConnection *t = el_tracked(conn);

	if (t)
	{
		t->receiving = true;
		t->deadline = el_read_deadline();
	}
}

/* Has this connection's request run past its deadline? */
bool
el_request_overdue(struct MHD_Connection *conn)
{
	ElTrackedConnection *t = el_tracked(conn);

	return t && t->receiving && GetCurrentTimestamp() > t->deadline;
}

/*
 * Shut down the connections whose request is overdue.  Returns the time
 * until the next deadline in ms (at most max_ms), for the loop's wait.
 */
long
el_enforce_deadlines(long max_ms)
{
	TimestampTz now = GetCurrentTimestamp();
	long		next = max_ms;

	for (int i = 0; i < EL_HTTP_MAX_CONNECTIONS; i++)
	{
		ElTrackedConnection *t = &tracked[i];

		if (!t->used || !t->receiving || t->fd < 0)
			continue;
		if (now > t->deadline)
		{
			(void) shutdown(t->fd, SHUT_RDWR);
			t->receiving = false;
		}
		else
		{
			long		secs;
			int			usecs;

			TimestampDifference(now, t->deadline, &secs, &usecs);
			next = Min(next, secs * 1000 + usecs / 1000 + 1);
		}
	}
	return next;
}

/*
 * Count bytes of body this request is about to hold.  False (nothing
 * counted) when that would exceed enterprise_lab.http_max_buffered across
 * all gateway processes.
 */
bool
el_reserve_body(ElRequest *req, uint64 bytes)
{
	uint64		total;

	if (el_shared == NULL || bytes == 0)
		return true;
	total = pg_atomic_add_fetch_u64(&el_shared->http_body_bytes, bytes);
	if (total > (uint64) el_http_max_buffered)
	{
		(void) pg_atomic_sub_fetch_u64(&el_shared->http_body_bytes, bytes);
		return false;
	}
	req->reserved += bytes;
	process_reserved += bytes;
	return true;
}

/* Give back what a finished request held. */
void
el_release_body(ElRequest *req)
{
	if (el_shared != NULL && req->reserved > 0)
	{
		(void) pg_atomic_sub_fetch_u64(&el_shared->http_body_bytes, req->reserved);
		process_reserved -= req->reserved;
	}
	req->reserved = 0;
}

/* before_shmem_exit: a gateway that exits mid-request gives its bytes back. */
void
el_release_all_bodies(int code, Datum arg)
{
	if (el_shared != NULL && process_reserved > 0)
		(void) pg_atomic_sub_fetch_u64(&el_shared->http_body_bytes, process_reserved);
	process_reserved = 0;
}
