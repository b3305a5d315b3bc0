#include "ops.h"

#include <string.h>

const alloy_op alloy_ops[] = {
  {"user_token", "GET", SERVICE_EMBEDDED, "/users/{userId}/token", 0, RESULT_FIELD, "token"},
  {"create_user", "POST", SERVICE_BASE, "/users", 1, RESULT_JSON, NULL},
  {"list_users", "GET", SERVICE_BASE, "/users", 0, RESULT_LIST, NULL},
  {"get_user", "GET", SERVICE_BASE, "/users/{userId}", 0, RESULT_JSON, NULL},
  {"delete_user", "DELETE", SERVICE_BASE, "/users/{userId}", 0, RESULT_JSON, NULL},
  {"create_credential", "POST", SERVICE_BASE, "/connectors/{connectorId}/credentials", 1,
   RESULT_JSON, NULL},
  {"list_credentials", "GET", SERVICE_BASE, "/credentials/users/{userId}", 0, RESULT_LIST, NULL},
  {"list_user_credentials", "GET", SERVICE_BASE, "/users/{userId}/credentials", 0, RESULT_LIST, NULL},
  {"list_connector_credentials", "GET", SERVICE_BASE, "/connectors/{connectorId}/credentials", 0,
   RESULT_LIST, NULL},
  {"delete_credential", "DELETE", SERVICE_BASE, "/users/{userId}/credentials/{credentialId}", 0,
   RESULT_JSON, NULL},
  {"credential_metadata", "GET", SERVICE_BASE, "/connectors/{connectorId}/credentials/metadata", 0,
   RESULT_LIST, NULL},
  {"list_connectors", "GET", SERVICE_BASE, "/connectors", 0, RESULT_LIST, NULL},
};

const size_t alloy_op_count = sizeof alloy_ops / sizeof alloy_ops[0];

const alloy_op *alloy_op_find(const char *name) {
  for (size_t i = 0; i < alloy_op_count; i++)
    if (strcmp(alloy_ops[i].name, name) == 0) return &alloy_ops[i];
  return NULL;
}
