# PGXS build for enterprise_lab.
#
# The install script is assembled from one SQL file per boundary under
# src/sql/, in file-name order; every C file under src/ is part of the module.

EXTENSION   = enterprise_lab
EXTVERSION  = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big  = enterprise_lab
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

SQL_PARTS   = $(sort $(wildcard src/sql/*.sql))
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard $(EXTENSION)--*.sql))

REGRESS      = $(basename $(notdir $(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=.

PG_CPPFLAGS = -Isrc/include -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK  = -lcurl -lcrypto -lmicrohttpd -lxml2

EXTRA_CLEAN = $(DATA_built)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(DATA_built): $(SQL_PARTS) $(EXTENSION).control
	cat $(SQL_PARTS) > $@

# The dashboard (web/) goes to the share directory, where the gateway serves
# it from; the directory is replaced whole, so removed files do not linger.
WEB_DIR = $(DESTDIR)$(datadir)/extension/enterprise_lab_web
install: install-web
install-web:
	rm -rf '$(WEB_DIR)' && $(MKDIR_P) '$(WEB_DIR)'
	if [ -d web ]; then cd web && find . -type f ! -name '.*' | while read -r f; do \
	  $(MKDIR_P) "$(WEB_DIR)/$$(dirname "$$f")" && $(INSTALL_DATA) "$$f" "$(WEB_DIR)/$$f" || exit 1; done; fi

# Swagger UI for GET /docs: the files of npm's swagger-ui-dist
# (scripts/install-deps puts it in .deps/).  A packager points
# SWAGGER_UI_DIST at its own copy; without one /docs says it is missing.
SWAGGER_UI_DIST ?= .deps/node_modules/swagger-ui-dist
SWAGGER_UI_FILES = swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE
install: install-swagger-ui
install-swagger-ui: install-web
	if [ -f '$(SWAGGER_UI_DIST)/swagger-ui-bundle.js' ]; then \
	  for f in $(SWAGGER_UI_FILES); do $(INSTALL_DATA) '$(SWAGGER_UI_DIST)'/$$f '$(WEB_DIR)/docs/' || exit 1; done; \
	else echo "warning: no swagger-ui-dist in $(SWAGGER_UI_DIST): GET /docs will only link to /openapi.json (run scripts/install-deps)"; fi
uninstall: uninstall-web
uninstall-web:
	rm -rf '$(WEB_DIR)'
.PHONY: install-web install-swagger-ui uninstall-web
