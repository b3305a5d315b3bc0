/* The Alloy operations as data: adding an endpoint is adding a row. */
#ifndef ALLOY_OPS_H
#define ALLOY_OPS_H

#include <stddef.h>

enum op_service { SERVICE_BASE, SERVICE_EMBEDDED };

enum op_result {
  RESULT_JSON,  /* the decoded body */
  RESULT_FIELD, /* one field of the decoded object, which must be present, or a bare string body */
  RESULT_LIST   /* an array: the body itself, or its data/credentials/metadata/connectors */
};

/* What may be sent again after a failed attempt (http.c decides with the request's flag). */
enum op_retry {
  RETRY_BY_METHOD, /* by the HTTP method: POST and PATCH only when the server surely did nothing */
  RETRY_UNSENT     /* not idempotent even among POSTs (execute): only a refused connection, or
                    * 429 with Retry-After (the server says it did not act and when to come back) */
};

typedef struct alloy_op {
  const char *name;
  const char *method;
  enum op_service service;
  const char *path; /* "{name}" placeholders are taken, in order, from the call's arguments */
  int has_body;     /* the argument after the path parameters is the JSON body */
  enum op_result result;
  const char *field;
  enum op_retry retry;
} alloy_op;

extern const alloy_op alloy_ops[];
extern const size_t alloy_op_count;

const alloy_op *alloy_op_find(const char *name);

#endif
