# Writes ${OUT}: a C++ source defining `const char ${SYMBOL}[]` with the contents of ${IN}, as a raw
# string literal (the file must not contain the delimiter `)marmot_embed"`). Run at build time.
file(READ "${IN}" content)
string(FIND "${content}" ")marmot_embed\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw string delimiter )marmot_embed\"")
endif()
set(text "// Generated from ${IN} by cmake/embed_file.cmake; do not edit.\nextern const char ${SYMBOL}[];\nconst char ${SYMBOL}[] = R\"marmot_embed(${content})marmot_embed\";\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
