#include "ops.h"

#include <string.h>

const alloy_op alloy_ops[] = {
  /* the 2025-09 reference sends userId in the query as well as the path */
  {"user_token", "GET", SERVICE_EMBEDDED, "/users/{userId}/token?userId={userId}", 0, RESULT_FIELD, "token",
   RETRY_BY_METHOD},
  {"create_user", "POST", SERVICE_BASE, "/users", 1, RESULT_JSON, NULL, RETRY_BY_METHOD},
  {"list_users", "GET", SERVICE_BASE, "/users", 0, RESULT_LIST, NULL, RETRY_BY_METHOD},
  {"get_user", "GET", SERVICE_BASE, "/users/{userId}", 0, RESULT_JSON, NULL, RETRY_BY_METHOD},
  {"delete_user", "DELETE", SERVICE_BASE, "/users/{userId}", 0, RESULT_JSON, NULL, RETRY_BY_METHOD},
  /* fullName only: the username cannot change (the Connectivity users guide) */
  {"update_user", "PUT", SERVICE_BASE, "/users/{userId}", 1, RESULT_JSON, NULL, RETRY_BY_METHOD},
  {"create_credential", "POST", SERVICE_BASE, "/connectors/{connectorId}/credentials", 1,
   RESULT_JSON, NULL, RETRY_BY_METHOD},
  {"list_credentials", "GET", SERVICE_BASE, "/credentials/users/{userId}", 0, RESULT_LIST, NULL,
   RETRY_BY_METHOD},
  {"list_user_credentials", "GET", SERVICE_BASE, "/users/{userId}/credentials", 0, RESULT_LIST, NULL,
   RETRY_BY_METHOD},
  {"list_connector_credentials", "GET", SERVICE_BASE, "/connectors/{connectorId}/credentials", 0,
   RESULT_LIST, NULL, RETRY_BY_METHOD},
  {"delete_credential", "DELETE", SERVICE_BASE, "/users/{userId}/credentials/{credentialId}", 0,
   RESULT_JSON, NULL, RETRY_BY_METHOD},
  {"credential_metadata", "GET", SERVICE_BASE, "/connectors/{connectorId}/credentials/metadata", 0,
   RESULT_LIST, NULL, RETRY_BY_METHOD},
  {"list_connectors", "GET", SERVICE_BASE, "/connectors", 0, RESULT_LIST, NULL, RETRY_BY_METHOD},
  {"get_connector", "GET", SERVICE_BASE, "/connectors/{connectorId}", 0, RESULT_JSON, NULL, RETRY_BY_METHOD},
  /* Every connector's authentication facts in one call (the Embedded reference):
   * {"data": [{connector, icon, isOauth, properties: [{name, displayName, description?}]}]} */
  {"credential_metadata_all", "GET", SERVICE_BASE, "/metadata/credentials", 0, RESULT_LIST, NULL, RETRY_BY_METHOD},
  /* The response shape of resources is not documented: the decoded body, as served. */
  {"list_resources", "GET", SERVICE_BASE, "/connectors/{connectorId}/resources", 0, RESULT_JSON, NULL,
   RETRY_BY_METHOD},
  {"get_action", "GET", SERVICE_BASE, "/connectors/{connectorId}/actions/{actionId}", 0, RESULT_JSON,
   NULL, RETRY_BY_METHOD},
  {"execute_action", "POST", SERVICE_BASE, "/connectors/{connectorId}/actions/{actionId}/execute", 1,
   RESULT_JSON, NULL, RETRY_UNSENT},
  /* Embedded runs: a trigger that may have run a workflow is not sent again (as execute). */
  {"run_event", "POST", SERVICE_BASE, "/run/event", 1, RESULT_JSON, NULL, RETRY_UNSENT},
  {"run_workflow", "POST", SERVICE_BASE, "/run/workflow", 1, RESULT_JSON, NULL, RETRY_UNSENT},
  {"list_events", "GET", SERVICE_BASE, "/events", 0, RESULT_LIST, NULL, RETRY_BY_METHOD},
  /* userId is a query parameter: client:list_integrations({query = {userId = id}}) */
  {"list_integrations", "GET", SERVICE_BASE, "/integrations", 0, RESULT_LIST, NULL, RETRY_BY_METHOD},
  /* The logs' answer is documented only by an example ({notifications, pagination, ...}): the
   * decoded body, shaped in Lua (alloy.logs). Parameters as the options' query. */
  {"list_logs", "GET", SERVICE_BASE, "/logs", 0, RESULT_JSON, NULL, RETRY_BY_METHOD},
  /* Files (Connectivity API), for x-alloy-userid or the API key's own user. The request only
   * hands out a URL (deduplicated by MD5): sent again as any POST. */
  {"upload_request", "POST", SERVICE_BASE, "/connectors/files/upload/request", 1, RESULT_JSON, NULL,
   RETRY_BY_METHOD},
  {"list_files", "GET", SERVICE_BASE, "/connectors/files/list", 0, RESULT_JSON, NULL, RETRY_BY_METHOD},
};

const size_t alloy_op_count = sizeof alloy_ops / sizeof alloy_ops[0];

const alloy_op *alloy_op_find(const char *name) {
  for (size_t i = 0; i < alloy_op_count; i++)
    if (strcmp(alloy_ops[i].name, name) == 0) return &alloy_ops[i];
  return NULL;
}
