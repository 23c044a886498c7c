int main() { return 0; }  // replaced once config lands
