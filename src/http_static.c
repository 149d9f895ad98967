/*
 * http_static.c
 *		The dashboard's files, and Swagger UI under /docs, served from the
 *		extension's share directory (make install copies web/ and
 *		swagger-ui-dist's files there).
 */
#include "postgres.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"

#include "gateway.h"

static char web_root[PATH_MAX];

/* Find the web root once, at start; no files there is not fatal. */
void
el_static_init(void)
{
	char		share[MAXPGPATH];
	char		candidate[MAXPGPATH];

	get_share_path(my_exec_path, share);
	snprintf(candidate, sizeof(candidate), "%s/extension/enterprise_lab_web", share);
	if (realpath(candidate, web_root) == NULL)
	{
		web_root[0] = '\0';
		ereport(LOG,
				(errmsg("enterprise_lab gateway: no dashboard files in \"%s\"", candidate),
				 errhint("Run make install in the enterprise_lab source tree.")));
	}
}

static const char *
el_content_type(const char *path)
{
	static const struct
	{
		const char *ext;
		const char *type;
	}			types[] = {
		{".html", "text/html; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".json", "application/json; charset=utf-8"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".jpg", "image/jpeg"},
		{".jpeg", "image/jpeg"},
		{".ico", "image/x-icon"},
		{".txt", "text/plain; charset=utf-8"},
		{".woff2", "font/woff2"},
	};
	const char *dot = strrchr(path, '.');

	if (dot && strchr(dot, '/') == NULL)
	{
		for (size_t i = 0; i < lengthof(types); i++)
			if (pg_strcasecmp(dot, types[i].ext) == 0)
				return types[i].type;
	}
	return "application/octet-stream";
}

/*
 * A URL path (already percent-decoded by libmicrohttpd) names a file we
 * serve only if every segment is a plain name: letters, digits, '-', '_'
 * and '.', not starting with '.'.  That refuses "..", hidden files, "//",
 * backslashes and whatever a second round of decoding could turn into one
 * of those ('%' is not allowed).  realpath() then proves the file lies
 * under the web root, so a symbolic link cannot lead out of it.
 */
static bool
el_static_path(const char *url, char *resolved)
{
	char		candidate[MAXPGPATH];
	const char *p;
	bool		segment_start = true;

	if (url[0] != '/' || strlen(url) > 200)
		return false;
	for (p = url + 1; *p; p++)
	{
		if (*p == '/')
		{
			if (segment_start)
				return false;
			segment_start = true;
			continue;
		}
		if (segment_start && *p == '.')
			return false;
		if (!(isalnum((unsigned char) *p) || *p == '-' || *p == '_' || *p == '.'))
			return false;
		segment_start = false;
	}

	if (strcmp(url, "/") == 0)
		snprintf(candidate, sizeof(candidate), "%s/index.html", web_root);
	else if (url[strlen(url) - 1] == '/')
		snprintf(candidate, sizeof(candidate), "%s%sindex.html", web_root, url);
	else
		snprintf(candidate, sizeof(candidate), "%s%s", web_root, url);

	if (realpath(candidate, resolved) == NULL)
		return false;
	return strncmp(resolved, web_root, strlen(web_root)) == 0 &&
		resolved[strlen(web_root)] == '/';
}

enum MHD_Result
el_serve_static(struct MHD_Connection *conn, const char *url)
{
	char		path[PATH_MAX];
	struct stat st;
	struct MHD_Response *response;
	int			fd;

	if (web_root[0] == '\0' || !el_static_path(url, path) ||
		(fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return el_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
						  "not found\n", 10);
	/* A directory (/docs) is served its index.html, which must not be a link. */
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
	{
		int			dirfd = fd;

		fd = openat(dirfd, "index.html", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		close(dirfd);
		strlcat(path, "/index.html", sizeof(path));
		if (fd < 0)
			return el_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
							  "not found\n", 10);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		return el_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
						  "not found\n", 10);
	}

	/* libmicrohttpd owns fd from here on and closes it. */
	response = MHD_create_response_from_fd((uint64_t) st.st_size, fd);
	if (response == NULL)
	{
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, el_content_type(path));
	MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(response, "X-Frame-Options", "DENY");
	MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	return el_queue_response(conn, MHD_HTTP_OK, response);
}
