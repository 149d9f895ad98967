/*
 * webhook_sign.c
 *		Standard Webhooks signatures and secrets, with OpenSSL.
 *
 * A secret is "whsec_" followed by the base64 of random bytes; the bytes
 * (not the text) are the HMAC key.  The signature of one request is
 *
 *		webhook-signature: v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>
 *
 * el_webhook_sign() is a pure function over caller-owned buffers: it never
 * allocates or raises an error, so the delivery worker may call it for every
 * request of a batch without a transaction, and a regression test can check
 * it against the specification's published example.
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "webhook.h"

#define WHSEC_PREFIX "whsec_"

/*
 * Decode the key bytes of a whsec_ secret into key[EL_WEBHOOK_MAX_KEY].
 * Returns the key length, or -1 when the secret is not whsec_ + base64.
 */
int
el_webhook_secret_key(const char *secret, unsigned char *key)
{
	size_t		prefix = strlen(WHSEC_PREFIX);
	size_t		len;
	unsigned char buf[EL_WEBHOOK_MAX_KEY + 3];
	int			n;
	int			pad = 0;

	if (strncmp(secret, WHSEC_PREFIX, prefix) != 0)
		return -1;
	secret += prefix;
	len = strlen(secret);
	if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(buf))
		return -1;
	n = EVP_DecodeBlock(buf, (const unsigned char *) secret, (int) len);
	if (n < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (secret[len - 1] == '=')
		pad++;
	if (len > 1 && secret[len - 2] == '=')
		pad++;
	n -= pad;
	if (n <= 0 || n > EL_WEBHOOK_MAX_KEY)
		return -1;
	memcpy(key, buf, n);
	return n;
}

/*
 * Write "v1,<base64 signature>" for (id, timestamp, body) into
 * out[EL_WEBHOOK_SIGNATURE_LEN].  Returns false when the secret is not
 * usable.
 */
bool
el_webhook_sign(const char *secret, const char *id, int64 timestamp,
				const char *body, size_t body_len, char *out)
{
	unsigned char key[EL_WEBHOOK_MAX_KEY];
	int			keylen = el_webhook_secret_key(secret, key);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char		prefix[128];
	int			prefix_len;
	static EVP_MAC *hmac = NULL;	/* fetched once per process */
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM	params[2];
	size_t		maclen_sz = 0;
	bool		ok;

	if (keylen < 0)
		return false;
	prefix_len = snprintf(prefix, sizeof(prefix), "%s." INT64_FORMAT ".", id, timestamp);
	if (prefix_len < 0 || prefix_len >= (int) sizeof(prefix))
		return false;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (hmac == NULL)
		hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (hmac)
		ctx = EVP_MAC_CTX_new(hmac);
	ok = ctx != NULL &&
		EVP_MAC_init(ctx, key, keylen, params) == 1 &&
		EVP_MAC_update(ctx, (const unsigned char *) prefix, prefix_len) == 1 &&
		EVP_MAC_update(ctx, (const unsigned char *) body, body_len) == 1 &&
		EVP_MAC_final(ctx, mac, &maclen_sz, sizeof(mac)) == 1;
	maclen = (unsigned int) maclen_sz;
	EVP_MAC_CTX_free(ctx);
	explicit_bzero(key, sizeof(key));
	if (!ok)
		return false;

	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *) out + 3, mac, (int) maclen);
	return true;
}

/*
 * integration.webhook_signature(secret, webhook_id, webhook_timestamp, body)
 */
PG_FUNCTION_INFO_V1(el_webhook_signature);
Datum
el_webhook_signature(PG_FUNCTION_ARGS)
{
	char	   *secret = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		timestamp = PG_GETARG_INT64(2);
	text	   *body = PG_GETARG_TEXT_PP(3);
	char		out[EL_WEBHOOK_SIGNATURE_LEN];

	if (strlen(id) > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("webhook_id is too long"),
				 errdetail("It has %zu characters; the limit is 100.", strlen(id))));
	if (!el_webhook_sign(secret, id, timestamp, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), out))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the signing secret is not a Standard Webhooks secret"),
				 errdetail("It must be whsec_ followed by the base64 of 1 to %d bytes.", EL_WEBHOOK_MAX_KEY)));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}

/*
 * integration.generate_webhook_secret(): whsec_ + base64 of 32 bytes from
 * the operating system's strong random source.
 */
PG_FUNCTION_INFO_V1(el_generate_webhook_secret);
Datum
el_generate_webhook_secret(PG_FUNCTION_ARGS)
{
	unsigned char bytes[32];
	char		out[sizeof(WHSEC_PREFIX) + 48];

	if (!pg_strong_random(bytes, sizeof(bytes)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a webhook secret")));
	memcpy(out, WHSEC_PREFIX, strlen(WHSEC_PREFIX));
	EVP_EncodeBlock((unsigned char *) out + strlen(WHSEC_PREFIX), bytes, sizeof(bytes));
	explicit_bzero(bytes, sizeof(bytes));
	PG_RETURN_TEXT_P(cstring_to_text(out));
}
