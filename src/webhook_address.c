/*
 * webhook_address.c
 *		Which addresses a webhook may be sent to.
 *
 * A subscription URL is written by an administrator, but it makes the
 * database server open connections: pointed at loopback, a private network
 * or a link-local metadata service it would reach what only the server can
 * reach (server-side request forgery).  So every address the delivery
 * worker is about to connect to is checked (libcurl's open-socket callback
 * calls el_webhook_address_allowed after name resolution, which also
 * defeats DNS rebinding), and a URL whose host is such an address literally
 * is refused when the subscription is written.  Networks listed in
 * enterprise_lab.delivery_allowed_networks are allowed anyway (the tests
 * allow 127.0.0.1).
 *
 * Addresses and networks are parsed by PostgreSQL's own inet parser and
 * URLs by libcurl's URL API; el_webhook_address_allowed runs inside a
 * libcurl callback and so never allocates or raises an error.
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <curl/curl.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/timestamp.h"

#include "enterprise_lab.h"
#include "webhook.h"

#define EL_MAX_ALLOWED_NETWORKS 32

typedef struct ElNetwork
{
	int			family;			/* AF_INET or AF_INET6 */
	int			bits;
	unsigned char addr[16];
} ElNetwork;

typedef struct ElNetworkList
{
	int			count;
	ElNetwork	networks[EL_MAX_ALLOWED_NETWORKS];
} ElNetworkList;

static char *el_delivery_allowed_networks = NULL;
static ElNetworkList *allowed = NULL;

/* Never reachable from outside the server's own networks. */
static const struct
{
	const char *network;
	const char *why;
}			refused_networks[] = {
	{"0.0.0.0/8", "a reserved address"},
	{"10.0.0.0/8", "a private address"},
	{"100.64.0.0/10", "a shared (carrier-grade NAT) address"},
	{"127.0.0.0/8", "a loopback address"},
	{"169.254.0.0/16", "a link-local address"},
	{"172.16.0.0/12", "a private address"},
	{"192.0.0.0/24", "a reserved address"},
	{"192.168.0.0/16", "a private address"},
	{"198.18.0.0/15", "a benchmarking address"},
	{"224.0.0.0/4", "a multicast address"},
	{"240.0.0.0/4", "a reserved address"},
	{"::/128", "the unspecified address"},
	{"::1/128", "a loopback address"},
	{"64:ff9b::/96", "a NAT64 address"},
	{"fc00::/7", "a private (unique local) address"},
	{"fe80::/10", "a link-local address"},
	{"ff00::/8", "a multicast address"},
};
static ElNetwork refused[lengthof(refused_networks)];
static bool refused_parsed = false;

static bool
el_parse_network(const char *text, ElNetwork *net)
{
	memset(net, 0, sizeof(*net));
	net->bits = pg_inet_net_pton(PGSQL_AF_INET, text, net->addr, -1);
	if (net->bits >= 0)
	{
		net->family = AF_INET;
		return true;
	}
	net->bits = pg_inet_net_pton(PGSQL_AF_INET6, text, net->addr, -1);
	if (net->bits >= 0)
	{
		net->family = AF_INET6;
		return true;
	}
	return false;
}

static bool
el_in_network(int family, const unsigned char *addr, const ElNetwork *net)
{
	int			whole = net->bits / 8;
	int			rest = net->bits % 8;

	if (family != net->family)
		return false;
	if (memcmp(addr, net->addr, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((addr[whole] ^ net->addr[whole]) & (0xFF << (8 - rest)) & 0xFF) == 0;
}

/*
 * May the worker connect to addr?  When not, *why says what kind of
 * address it is.  IPv4-mapped IPv6 addresses are judged as IPv4.
 */
bool
el_webhook_address_allowed(const struct sockaddr *addr, const char **why)
{
	static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
	unsigned char bytes[16];
	int			family;

	*why = NULL;
	if (addr->sa_family == AF_INET)
	{
		family = AF_INET;
		memcpy(bytes, &((const struct sockaddr_in *) addr)->sin_addr, 4);
	}
	else if (addr->sa_family == AF_INET6)
	{
		const unsigned char *a6 = (const unsigned char *) &((const struct sockaddr_in6 *) addr)->sin6_addr;

		if (memcmp(a6, v4mapped, sizeof(v4mapped)) == 0)
		{
			family = AF_INET;
			memcpy(bytes, a6 + 12, 4);
		}
		else
		{
			family = AF_INET6;
			memcpy(bytes, a6, 16);
		}
	}
	else
	{
		*why = "not an internet address";
		return false;
	}

	if (allowed)
		for (int i = 0; i < allowed->count; i++)
			if (el_in_network(family, bytes, &allowed->networks[i]))
				return true;

	if (!refused_parsed)
	{
		for (int i = 0; i < (int) lengthof(refused_networks); i++)
			if (!el_parse_network(refused_networks[i].network, &refused[i]))
				refused[i].family = -1;
		refused_parsed = true;
	}
	for (int i = 0; i < (int) lengthof(refused_networks); i++)
	{
		if (el_in_network(family, bytes, &refused[i]))
		{
			*why = refused_networks[i].why;
			return false;
		}
	}
	return true;
}

static bool
el_check_allowed_networks(char **newval, void **extra, GucSource source)
{
	ElNetworkList *list;
	char	   *copy;
	char	   *item;
	char	   *save = NULL;

	list = (ElNetworkList *) el_guc_malloc(sizeof(ElNetworkList));
	if (list == NULL)
		return false;
	memset(list, 0, sizeof(*list));

	copy = pstrdup(*newval ? *newval : "");
	for (item = strtok_r(copy, ", \t", &save); item; item = strtok_r(NULL, ", \t", &save))
	{
		if (list->count >= EL_MAX_ALLOWED_NETWORKS)
		{
			GUC_check_errdetail("At most %d networks may be listed.", EL_MAX_ALLOWED_NETWORKS);
			el_guc_free(list);
			return false;
		}
		if (!el_parse_network(item, &list->networks[list->count]))
		{
			GUC_check_errdetail("\"%s\" is not an IP address or network.", item);
			GUC_check_errhint("List addresses or networks separated by commas, e.g. 127.0.0.1, 10.1.0.0/16, ::1.");
			el_guc_free(list);
			return false;
		}
		list->count++;
	}
	pfree(copy);
	*extra = list;
	return true;
}

static void
el_assign_allowed_networks(const char *newval, void *extra)
{
	allowed = (ElNetworkList *) extra;
}

void
el_webhook_address_define_gucs(void)
{
	DefineCustomStringVariable("enterprise_lab.delivery_allowed_networks",
							   "Loopback, private or link-local networks webhooks may be delivered to anyway.",
							   "Comma-separated addresses or networks (127.0.0.1, 10.1.0.0/16, ::1). Empty: only public addresses.",
							   &el_delivery_allowed_networks,
							   "",
							   PGC_SUSET,
							   0,
							   el_check_allowed_networks, el_assign_allowed_networks, NULL);
}

/*
 * integration.check_webhook_url(url): raise 22023 unless url is http(s),
 * carries no credentials, and does not name a refused address literally.
 * (Host names are checked when the worker connects: they may resolve to
 * something else by then.)
 */
PG_FUNCTION_INFO_V1(el_check_webhook_url);
Datum
el_check_webhook_url(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	CURLU	   *h = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char		hostcopy[256] = "";
	char		schemecopy[16] = "";
	bool		parsed;
	bool		has_user;

	if (h == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	parsed = curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK;
	has_user = curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK;
	if (parsed)
	{
		strlcpy(schemecopy, scheme, sizeof(schemecopy));
		strlcpy(hostcopy, host, sizeof(hostcopy));
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_url_cleanup(h);

	if (!parsed)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription url is not a valid URL"),
				 errhint("Give an absolute http:// or https:// URL such as https://hooks.example.com/enterprise-lab.")));
	if (pg_strcasecmp(schemecopy, "http") != 0 && pg_strcasecmp(schemecopy, "https") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription url must use http or https"),
				 errdetail("The scheme given was \"%s\".", schemecopy)));
	if (has_user)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription url must not contain credentials"),
				 errhint("Put credentials in the subscription's headers (e.g. Authorization), which are not shown in logs or lists.")));

	/* A literal address: judge it now. */
	{
		struct sockaddr_storage ss;
		size_t		n = strlen(hostcopy);
		const char *why;

		memset(&ss, 0, sizeof(ss));
		if (n > 2 && hostcopy[0] == '[' && hostcopy[n - 1] == ']')
		{
			hostcopy[n - 1] = '\0';
			if (inet_pton(AF_INET6, hostcopy + 1, &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1)
				ss.ss_family = AF_INET6;
		}
		else if (inet_pton(AF_INET, hostcopy, &((struct sockaddr_in *) &ss)->sin_addr) == 1)
			ss.ss_family = AF_INET;

		if (ss.ss_family != 0 && !el_webhook_address_allowed((struct sockaddr *) &ss, &why))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("subscription url points to %s", why),
					 errdetail("Webhooks are not sent to loopback, private, link-local or reserved addresses."),
					 errhint("A superuser may allow a network with enterprise_lab.delivery_allowed_networks.")));
	}
	PG_RETURN_VOID();
}
