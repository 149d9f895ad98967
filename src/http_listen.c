/*
 * http_listen.c
 *		The gateway's listening socket, opened by the postmaster.
 *
 * Every gateway process accepts from this one socket, which each inherits
 * when the postmaster forks it (as PostgreSQL's own backends inherit the
 * postmaster's sockets).  One accept queue for all of them is what keeps a
 * slow call from blocking others: a process stuck in a call (a stalled S3,
 * say) simply stops accepting, and the idle ones take the new connections.
 * With a socket per process (SO_REUSEPORT) the kernel would instead hand
 * a share of new connections to the stuck process, where they would wait.
 *
 * This runs in the postmaster, from _PG_init while shared_preload_libraries
 * are loaded, so it must not raise an ERROR (that would stop the server
 * from starting): a failure is logged and the gateways report it.
 */
#include "postgres.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway.h"

pgsocket	el_http_listen_socket = PGINVALID_SOCKET;
char		el_http_listen_error[256] = "";

/* Longest queue of connections not yet accepted by any gateway process. */
#define EL_HTTP_BACKLOG 128

void
el_open_listen_socket(void)
{
	struct addrinfo hints = {0};
	struct addrinfo *addrs;
	char		port[16];
	int			rc;

	if (el_http_port == 0)
		return;

	snprintf(port, sizeof(port), "%d", el_http_port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(el_http_listen, port, &hints, &addrs);
	if (rc != 0)
	{
		snprintf(el_http_listen_error, sizeof(el_http_listen_error),
				 "invalid enterprise_lab.http_listen \"%s\": %s", el_http_listen, gai_strerror(rc));
		ereport(WARNING, (errmsg("enterprise_lab gateway: %s", el_http_listen_error)));
		return;
	}

	for (struct addrinfo *a = addrs; a != NULL; a = a->ai_next)
	{
		int			one = 1;
		pgsocket	fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);

		if (fd == PGINVALID_SOCKET)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
			bind(fd, a->ai_addr, a->ai_addrlen) == 0 &&
			listen(fd, EL_HTTP_BACKLOG) == 0 &&
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0)
		{
			el_http_listen_socket = fd;
			break;
		}
		snprintf(el_http_listen_error, sizeof(el_http_listen_error),
				 "could not listen on %s port %d: %m", el_http_listen, el_http_port);
		close(fd);
	}
	freeaddrinfo(addrs);

	if (el_http_listen_socket == PGINVALID_SOCKET)
		ereport(WARNING,
				(errmsg("enterprise_lab gateway: %s", el_http_listen_error[0] ? el_http_listen_error
						: "no address to listen on"),
				 errhint("Is another server using the port?  Change enterprise_lab.http_port or enterprise_lab.http_listen and restart.")));
}
