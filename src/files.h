/* alloy.file_info and alloy.replace_file: what the scripts need of the file system, without
 * a shell or lua-posix (Debian 12 has no lua-posix for 5.4). */
#ifndef ALLOY_FILES_H
#define ALLOY_FILES_H

#include "compat.h"

/* Sets file_info and replace_file in the table on top of the stack. */
void files_open(lua_State *L);

#endif
