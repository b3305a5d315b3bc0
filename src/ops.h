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

typedef struct alloy_op {
  const char *name;
  const char *method;
  enum op_service service;
  const char *path; /* "{name}" placeholders are taken, in order, from the call's arguments */
  int has_body;     /* the argument after the path parameters is the JSON body */
  enum op_result result;
  const char *field;
} alloy_op;

extern const alloy_op alloy_ops[];
extern const size_t alloy_op_count;

const alloy_op *alloy_op_find(const char *name);

#endif
